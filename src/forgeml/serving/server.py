"""`forgeml serve`: the exported model of a run (or of the registry's champion) behind the HTTP
app, on uvicorn. With `--follow-champion N` every process checks the `champion` alias every N
seconds and swaps in a newly promoted model without dropping a request; otherwise a restart
picks it up."""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from forgeml.errors import ConfigError

OPTIONS_ENV = "FORGEML_SERVE_OPTIONS"  # how worker processes get the options
log = logging.getLogger("forgeml.serve")


@dataclass
class ServeOptions:
    run: str
    pipeline: str
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    threads: int = 1
    model_format: str = "onnx"
    follow_champion_s: float | None = None
    max_body_bytes: int = 1 << 20
    max_batch: int = 256
    params: Path | None = None
    uri: str = ""


def served_model(options: ServeOptions, run_id: str, echo=print):
    from forgeml.serving.app import Served
    from forgeml.serving.loading import bundle_of, endpoint_of, version_of

    bundle = bundle_of(options.uri, run_id, options.pipeline, options.model_format,
                       options.params, echo)
    return Served(endpoint_of(bundle, options.threads), version_of(bundle))


def follow_champion(model, options: ServeOptions, stop: threading.Event) -> None:
    """Poll the alias; load a new champion beside the old one, then swap. A failure keeps the
    current model serving and is retried at the next check."""
    from forgeml.tracking import resolve_run

    while not stop.wait(options.follow_champion_s):
        try:
            run_id = resolve_run(options.uri, "champion", options.pipeline)
            if run_id != model.current.version["run_id"]:
                model.swap(served_model(options, run_id, echo=log.warning))
                log.warning("now serving the new champion, run %s", run_id)
        except Exception as err:  # noqa: BLE001 - keep serving whatever goes wrong
            log.warning("champion check failed (still serving run %s): %s",
                        model.current.version["run_id"], str(err).splitlines()[0][:200])


def build_app(options: ServeOptions, run_id: str, echo=print):
    from forgeml.serving.app import ServedModel, create_app

    model = ServedModel(served_model(options, run_id, echo))
    app = create_app(model, options.max_body_bytes, options.max_batch)
    if options.follow_champion_s:
        stop = threading.Event()
        app.router.on_startup.append(lambda: threading.Thread(
            target=follow_champion, args=(model, options, stop), daemon=True).start())
        app.router.on_shutdown.append(stop.set)
    return app, model


def worker_app():
    """uvicorn's app factory in each worker process (--workers > 1)."""
    raw = json.loads(os.environ[OPTIONS_ENV])
    options = ServeOptions(**{**raw, "params": Path(raw["params"]) if raw["params"] else None})
    return build_app(options, raw["run_id"])[0]


def serve_command(uri: str, options: ServeOptions, console) -> None:
    import uvicorn

    from forgeml.tracking import resolve_run

    if options.follow_champion_s and options.run != "champion":
        raise ConfigError("--follow-champion needs --run champion (a fixed run never changes).")
    options.uri = uri
    run_id = resolve_run(uri, options.run, options.pipeline)
    # Load (and export, if needed) once here: workers then only download and verify.
    app, model = build_app(options, run_id, echo=console.print)
    version = model.current.version
    console.print(f"serving {options.pipeline} run {run_id} ({options.model_format}, sha256 "
                  f"{version['sha256'][:12]}…) on http://{options.host}:{options.port} with "
                  f"{options.workers} worker(s) x {options.threads} thread(s): POST /predict, "
                  "GET /health, GET /version", highlight=False, soft_wrap=True)
    settings = {"host": options.host, "port": options.port, "log_level": "warning",
                "access_log": False, "timeout_graceful_shutdown": 10}
    if options.workers == 1:
        uvicorn.run(app, **settings)
        return
    os.environ[OPTIONS_ENV] = json.dumps({**asdict(options), "run_id": run_id,
                                          "params": str(options.params or "")})
    uvicorn.run("forgeml.serving.server:worker_app", factory=True, workers=options.workers,
                **settings)
