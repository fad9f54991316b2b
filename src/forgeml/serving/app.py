"""The prediction server's HTTP app (FastAPI on uvicorn): POST /predict with JSON in and out,
GET /health and GET /version. Bad input is a 4xx with a one-line message, never a 5xx: the
body is size-limited before it is read, must be UTF-8 JSON, and each task's endpoint checks the
fields. The model behind it can be swapped while it serves (`ServedModel.swap`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from forgeml.serving.requests import RequestError

DRAIN_LIMIT = 256 << 20  # bytes of an oversized body read (and dropped) before closing


@dataclass
class Served:
    endpoint: Any  # the task's endpoint (answer(body, max_batch) -> dict)
    version: dict[str, Any]  # what /version says: pipeline, run, model format and hash


class ServedModel:
    """The model being served; swapped whole, so a request sees the old or the new one."""

    def __init__(self, served: Served):
        self._served = served

    @property
    def current(self) -> Served:
        return self._served

    def swap(self, served: Served) -> None:
        self._served = served  # one reference assignment: atomic under the GIL


def json_response(content: dict, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


def error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or a 413 once it passes `limit` bytes. An oversized body is still drained
    (not kept) so the client reads the 413 instead of a broken connection; past DRAIN_LIMIT
    the connection is simply closed."""
    declared = request.headers.get("content-length")
    if declared is not None and not declared.isdigit():
        raise RequestError(400, "The Content-Length header is not a number.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > DRAIN_LIMIT:
            break
    if size > limit:
        raise RequestError(413, f"The body is larger than the {limit:,}-byte limit "
                                "(`forgeml serve --max-body-kb`); split the request.")
    return b"".join(chunks)


def parse(raw: bytes) -> Any:
    if not raw.strip():
        raise RequestError(400, "The body is empty: send a JSON object.")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RequestError(400, f"The body is not UTF-8 (byte {err.start}).") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        if _only_non_finite_numbers(raw):
            raise RequestError(422, "The body holds NaN or Infinity, which are not numbers a "
                                    "model can take: send finite values.") from None
        raise RequestError(400, f"The body is not valid JSON ({err}).") from None


def _only_non_finite_numbers(raw: bytes) -> bool:
    """Valid JSON but for NaN / Infinity literals (which Python's json reads and orjson, like
    the JSON standard, refuses)."""
    import json

    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


def create_app(model: ServedModel, max_body_bytes: int, max_batch: int) -> FastAPI:
    app = FastAPI(title="ForgeML prediction server", docs_url="/docs", redoc_url=None)
    started = time.time()

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "uptime_s": round(time.time() - started, 1)}

    @app.get("/version")
    def version() -> dict:
        return model.current.version

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        served = model.current
        try:
            body = parse(await read_body(request, max_body_bytes))
        except ClientDisconnect:  # the client left mid-body: nobody to answer, nothing to log
            return Response(status_code=400)
        except RequestError as err:
            return error(err.status, str(err))
        try:
            # Inference outside the event loop: ONNX Runtime releases the GIL, so requests
            # overlap on the cores while the loop keeps accepting.
            answer = await run_in_threadpool(served.endpoint.answer, body, max_batch)
        except RequestError as err:
            return error(err.status, str(err))
        return json_response({**answer, "run_id": served.version["run_id"],
                              "model_format": served.version["model_format"]})

    @app.exception_handler(Exception)
    async def server_fault(request: Request, exc: Exception) -> Response:
        # A fault of the server, not of the request: one line, no traceback to the client.
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        return error(500, f"The server could not answer ({type(exc).__name__}: {first}).")

    @app.exception_handler(404)
    async def not_found(request: Request, exc) -> Response:
        return error(404, f"No route {request.url.path}: use POST /predict, GET /health or "
                          "GET /version.")

    @app.exception_handler(405)
    async def wrong_method(request: Request, exc) -> Response:
        return error(405, f"{request.method} is not allowed on {request.url.path}.")

    return app
