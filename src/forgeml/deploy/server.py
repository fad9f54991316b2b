"""`forgeml serve`: the exported model of a run (or of the registry's champion) behind the HTTP
app, on uvicorn. With `--follow-champion N` every process checks the `champion` alias every N
seconds and swaps in a newly promoted model without dropping a request; otherwise a restart
picks it up."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from forgeml.errors import ConfigError

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
    from forgeml.deploy.loading import bundle_of, endpoint_of, version_of
    from forgeml.serving.app import Served

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


def claim_port(host: str, port: int):
    """A socket bound to the address without SO_REUSEPORT: binding fails if anything listens
    there, another `forgeml serve` with SO_REUSEPORT workers included (which would otherwise
    share the port and split the traffic between two models). Checked before any export or
    model load."""
    import errno
    import socket

    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed server's TIME_WAIT
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise ConfigError(f"Port {port} on {host} is already served (another `forgeml "
                              "serve` or another program): stop it, or pick another --port.") \
                from None
        raise ConfigError(f"Cannot listen on {host}:{port} ({err.strerror}).") from None
    return sock


def listening_socket(host: str, port: int):
    """A TCP socket bound with SO_REUSEPORT, so that each worker process has its own and the
    kernel spreads connections over them. Made with proto=IPPROTO_TCP: asyncio sets
    TCP_NODELAY only on such sockets, and without it every answer waits ~40 ms for a delayed
    ACK (as uvicorn's own --workers mode does)."""
    import socket

    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


def run_worker(options: ServeOptions, run_id: str) -> None:
    """One worker process: its own socket, its own copy of the (already exported) model."""
    import uvicorn

    app, _ = build_app(options, run_id, echo=log.warning)
    sock = listening_socket(options.host, options.port)
    uvicorn.Server(uvicorn.Config(app, **_settings())).run(sockets=[sock])


def _settings() -> dict:
    from forgeml.serving.protocol import JSONErrorH11Protocol

    return {"log_level": "warning", "access_log": False, "timeout_graceful_shutdown": 10,
            "http": JSONErrorH11Protocol}


def supervise(options: ServeOptions, run_id: str, started=lambda: None) -> None:
    """Start `options.workers` processes; restart one that dies; stop all on SIGTERM/SIGINT.
    `started` is called once every worker answers /health."""
    import multiprocessing
    import signal
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("spawn")  # no fork of ONNX Runtime's threads
    stopping = False

    def start():
        process = context.Process(target=run_worker, args=(options, run_id), daemon=True)
        process.start()
        return process

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    workers = [start() for _ in range(options.workers)]
    announced = False
    try:
        while not stopping:
            if not announced and _answers(options.host, options.port):
                started()
                announced = True
            for sentinel in wait([w.sentinel for w in workers], timeout=0.5):
                index = next(i for i, w in enumerate(workers) if w.sentinel == sentinel)
                workers[index].join()  # reap it now: no zombie left beside its replacement
                if not stopping:
                    log.warning("worker %s exited (%s); starting another",
                                workers[index].pid, workers[index].exitcode)
                    workers[index] = start()
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.join(timeout=15)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _answers(host: str, port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False


def serve_command(uri: str, options: ServeOptions, console) -> None:
    import uvicorn

    from forgeml.tracking import resolve_run

    if options.follow_champion_s and options.run != "champion":
        raise ConfigError("--follow-champion needs --run champion (a fixed run never changes).")
    options.uri = uri
    claimed = claim_port(options.host, options.port)  # before the ~30 s of a first export
    run_id = resolve_run(uri, options.run, options.pipeline)
    # Load (and export, if needed) once here: workers then only download and verify.
    app, model = build_app(options, run_id, echo=console.print)
    version = model.current.version
    announce = (f"serving {options.pipeline} run {run_id} ({options.model_format}, sha256 "
                f"{version['sha256'][:12]}…) on http://{options.host}:{options.port} with "
                f"{options.workers} worker(s) x {options.threads} thread(s): POST /predict, "
                "GET /health, GET /version")
    if options.workers == 1:
        claimed.listen(2048)  # the claimed socket itself serves: no window for another server
        app.router.on_startup.append(
            lambda: console.print(announce, highlight=False, soft_wrap=True))
        uvicorn.Server(uvicorn.Config(app, **_settings())).run(sockets=[claimed])
        return
    del app, model
    # Workers bind their own SO_REUSEPORT sockets; the claim is let go just before.
    claimed.close()
    supervise(options, run_id, lambda: console.print(announce, highlight=False, soft_wrap=True))
