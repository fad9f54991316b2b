"""Warm stage start-up: under `dvc repro`, a stage command runs in a fork of a waiting
interpreter that has already imported torch, Lightning and MLflow, instead of importing them
again in each of the pipeline's processes.

- Only stage commands run by DVC (`DVC_STAGE` set) go warm; `FORGEML_WARM=0` turns it off.
- One server per interpreter, installed packages and environment: a stage sees exactly the
  environment, working directory, arguments and stdin/stdout/stderr (passed as descriptors) a
  cold start would, and ForgeML's own modules are imported fresh in every stage (only
  third-party libraries are preloaded), so an edit to the project is never served stale.
- The stage's exit status (or the signal that killed it) comes back as this process's own;
  signals sent to this process go on to the stage; if this process dies, so does the stage.
- The server listens on a socket in a folder only this user can open (the peer's uid is
  checked too) and exits after `FORGEML_WARM_IDLE_S` (default 60) seconds without a stage.
- Until a server is up, stages start cold: the first stage of a pipeline starts the server in
  the background, and later ones wait for it only while it is still importing.

Standard library only: this runs before anything heavy is imported.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback
from pathlib import Path

from forgeml.stages import STAGES

STAGE_COMMANDS = frozenset(STAGES)
# After a stage's client is gone (dvc killed, a time-out): SIGTERM first, so that training
# checkpoints as it does under any other SIGTERM, then SIGKILL if it has not ended by then.
_GRACE_ENV = "FORGEML_WARM_GRACE_S"
# Read only while a stage runs, and different for each stage / project / test: not part of the
# server's identity (everything else in the environment is).
_VOLATILE_ENV = frozenset({"DVC_STAGE", "DVC_ROOT", "PWD", "OLDPWD", "SHLVL", "_",
                           "PYTEST_CURRENT_TEST"})
_VOLATILE_PREFIXES = ("DVC_EXP_",)
# What stages import at start-up, in dependency order; one missing is skipped.
PRELOAD = ("numpy", "torch", "scipy.stats", "pandas", "sklearn.model_selection",
           "sklearn.linear_model", "sklearn.metrics", "omegaconf", "hydra", "jinja2",
           "safetensors.torch", "torchmetrics", "pytorch_lightning", "mlflow",
           "mlflow.pytorch", "matplotlib.pyplot", "onnx",
           # MLflow's SQL stores (~1 s per process to import and map) and torch's ONNX exporter
           # (~1.5 s on its first export), both pure imports: nothing connected or started.
           "mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store",
           "onnxscript", "torch.onnx._internal.exporter._core")
# Not onnxruntime: its import starts threads, and a fork of it hangs.
_STARTING_WAIT_S = 30.0
_ORIGIN_ENV = "FORGEML_WARM_ORIGIN_PID"


# ---------------------------------------------------------------- client (the stage command)

def delegate(argv: list[str], entry: str) -> int | None:
    """Run `forgeml <argv>` in a warm worker and return its exit code (a signal death is
    re-raised on this process), or None when the command should start cold here. `entry`
    ("module:function") is what the worker calls, as the cold start would, with `argv`."""
    if not _eligible(argv):
        return None
    try:
        folder = runtime_dir()
    except OSError:
        return None
    if len(os.fsencode(folder)) > 80:
        return None  # a unix socket's path has ~100 bytes at most
    key = server_key()
    conn = _connect(folder / f"{key}.sock")
    if conn is None:
        if _server_alive(folder, key):
            conn = _wait_for_server(folder, key, _STARTING_WAIT_S)
        else:
            _start_server(folder, key)
    if conn is None:
        return None
    with conn:
        return _run_remote(conn, argv, entry)


def _eligible(argv: list[str]) -> bool:
    return (os.name == "posix" and bool(argv) and argv[0] in STAGE_COMMANDS
            and "DVC_STAGE" in os.environ and os.environ.get("FORGEML_WARM", "1") != "0"
            and _ORIGIN_ENV not in os.environ and hasattr(socket, "send_fds")
            and hasattr(socket, "SO_PEERCRED"))  # Linux: the peer's uid is checked


def origin_pid() -> int:
    """The pid of the stage command as DVC started it (this process when started cold)."""
    return int(os.environ.get(_ORIGIN_ENV, os.getpid()))


def runtime_dir() -> Path:
    base = os.environ.get("FORGEML_WARM_DIR") or os.path.join(
        os.environ.get("XDG_RUNTIME_DIR") or "/tmp", f"forgeml-warm-{os.getuid()}")
    folder = Path(base)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    # Anyone who can connect can run commands as this user: the folder must be ours alone.
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(f"{folder} is not private to this user")
    return folder


def server_key() -> str:
    """Which server may run this stage: same interpreter, same installed packages (their
    folders change when anything is installed), same environment."""
    env = {k: v for k, v in os.environ.items()
           if k not in _VOLATILE_ENV and not k.startswith(_VOLATILE_PREFIXES)}
    sites = {}
    for entry in sys.path:
        with contextlib.suppress(OSError):
            if entry and os.path.isdir(entry):
                sites[entry] = os.stat(entry).st_mtime_ns
    blob = json.dumps([sys.executable, sys.version, env, sites], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _connect(path: Path) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        return None
    return conn


def _server_alive(folder: Path, key: str) -> bool:
    """A server holds its lock from its first instant (while still importing) to its exit."""
    fd = os.open(folder / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _wait_for_server(folder: Path, key: str, timeout_s: float) -> socket.socket | None:
    """A server still importing is ready sooner than a cold start here would be."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        conn = _connect(folder / f"{key}.sock")
        if conn is not None or not _server_alive(folder, key):
            return conn
        time.sleep(0.05)
    return None


def _start_server(folder: Path, key: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DVC_STAGE", "DVC_ROOT")}
    _forget_old_servers(folder)
    with contextlib.suppress(OSError), open(folder / f"{key}.log", "wb") as log:
        subprocess.Popen([sys.executable, "-c", "import forgeml.warm as w; w.serve_main()", key],
                         cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         start_new_session=True, close_fds=True)


def _forget_old_servers(folder: Path, age_s: float = 86400) -> None:
    """The files of servers (other environments) gone for a day: a folder that does not grow."""
    now = time.time()
    for lock in folder.glob("*.lock"):
        with contextlib.suppress(OSError):
            if now - lock.stat().st_mtime > age_s and not _server_alive(folder, lock.stem):
                for suffix in (".log", ".sock", ".lock"):
                    (folder / f"{lock.stem}{suffix}").unlink(missing_ok=True)


def _run_remote(conn: socket.socket, argv: list[str], entry: str) -> int | None:
    request = {"argv": [sys.argv[0], *argv], "entry": entry, "cwd": os.getcwd(),
               "env": dict(os.environ),
               "umask": _umask(), "path0": sys.path[0] if sys.path else "",
               "origin": os.getpid()}
    try:
        payload = json.dumps(request).encode()
        socket.send_fds(conn, [struct.pack("!Q", len(payload)) + payload], [0, 1, 2])
        reader = conn.makefile("rb")
        started = reader.readline()
    except OSError:
        return None
    if not started:  # the server went away before starting anything: start cold
        return None
    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                 signal.SIGUSR1, signal.SIGUSR2)

    def forward(signum, _frame):
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps({"signal": signum}).encode() + b"\n")

    for signum in forwarded:
        signal.signal(signum, forward)
    line = reader.readline()
    status = json.loads(line) if line else {"lost": True}
    for signum in forwarded:
        signal.signal(signum, signal.SIG_DFL)
    if "signal" in status:
        os.kill(os.getpid(), status["signal"])
        time.sleep(1)  # a signal this process does not die of (e.g. ignored by the parent)
        return 128 + status["signal"]
    if "lost" in status:
        sys.stderr.write("error: the warm ForgeML server stopped while running this stage; "
                         "rerun it (or set FORGEML_WARM=0 to start stages cold).\n")
        return 2
    return int(status["exit"])


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------- server

def serve_main() -> None:
    """Entry point of the server process; returns (and runs the stage) only in a worker."""
    key = sys.argv[1]
    request = serve(key, float(os.environ.get("FORGEML_WARM_IDLE_S", "60")))
    if request is not None:
        _run_worker(request)


def serve(key: str, idle_s: float) -> dict | None:
    folder = runtime_dir()
    lock_fd = os.open(folder / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return None  # another server for this key is up or starting
    if sys.path and sys.path[0] == "":
        sys.path.pop(0)  # the server's cwd; each worker gets its client's first entry back
    _preload()
    path = folder / f"{key}.sock"
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(32)
    listener.settimeout(0.5)
    _log(f"ready (pid {os.getpid()}, preloaded in {time.process_time():.1f} s CPU)")
    children: set[int] = set()
    idle_since = time.monotonic()
    while True:
        children = {pid for pid in children if not _reaped(pid)}
        if children:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > idle_s:
            break
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        conn.setblocking(True)
        pid = os.fork()
        if pid == 0:
            listener.close()
            os.close(lock_fd)
            return _supervise(conn)
        conn.close()
        children.add(pid)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    _log("idle: exiting")
    os.close(lock_fd)
    return None


def _preload() -> None:
    import importlib
    import threading

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - an optional library: the stage imports it cold
            _log(f"not preloaded: {name} ({type(err).__name__})")
    with contextlib.suppress(Exception):  # MLflow's ORM mapping, once instead of per stage
        from sqlalchemy.orm import configure_mappers

        configure_mappers()
    if threading.active_count() > 1:
        # A thread started by an import would not survive fork in the workers.
        _log(f"warning: {threading.active_count() - 1} extra thread(s) after preload")


def _reaped(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == pid


def _supervise(conn: socket.socket) -> dict | None:
    """In a fork of the server: receive one stage, fork its worker (returned to in the child),
    relay signals to it and report how it ended."""
    pid_, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                          struct.calcsize("3i")))
    if uid != os.getuid():
        os._exit(0)
    try:
        request, fds = _receive(conn)
    except (OSError, ValueError):
        os._exit(0)
    worker = os.fork()
    if worker == 0:
        conn.close()
        os.setpgid(0, 0)
        _die_with_parent()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        return request
    with contextlib.suppress(OSError):
        os.setpgid(worker, worker)
    for fd in fds:
        os.close(fd)
    _log(f"stage {' '.join(request['argv'][1:])} in {request['cwd']}: worker {worker}")
    _send(conn, {"started": worker})
    status = _watch(conn, worker)
    _send(conn, status)
    os._exit(0)


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 3)
    if len(fds) != 3 or len(data) < 8:
        raise ValueError("bad request")
    size = struct.unpack("!Q", data[:8])[0]
    body = bytearray(data[8:])
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ValueError("truncated request")
        body += chunk
    return json.loads(body), list(fds)


def _watch(conn: socket.socket, worker: int) -> dict:
    import selectors

    selector = selectors.DefaultSelector()
    selector.register(conn, selectors.EVENT_READ)
    pending = b""
    client_gone, kill_at = False, 0.0
    while True:
        done, status = os.waitpid(worker, os.WNOHANG)
        if done == worker:
            code = os.waitstatus_to_exitcode(status)
            return {"signal": -code} if code < 0 else {"exit": code}
        if client_gone:
            if time.monotonic() > kill_at:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker, signal.SIGKILL)
            time.sleep(0.05)
            continue
        if not selector.select(timeout=0.1):
            continue
        chunk = conn.recv(4096)
        if not chunk:  # the stage command was killed: so is its stage, after a grace period
            client_gone = True
            kill_at = time.monotonic() + float(os.environ.get(_GRACE_ENV, "30"))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker, signal.SIGTERM)
            continue
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            with contextlib.suppress(ProcessLookupError, ValueError, KeyError):
                os.killpg(worker, int(json.loads(line)["signal"]))


def _send(conn: socket.socket, message: dict) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(message).encode() + b"\n")


def _die_with_parent() -> None:
    """Linux: the worker gets SIGKILL if its supervisor dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _run_worker(request: dict) -> None:
    """Become the stage command a cold start would have been, then run it."""
    import importlib
    import random
    import tempfile

    os.chdir(request["cwd"])
    os.umask(request["umask"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ[_ORIGIN_ENV] = str(request["origin"])
    sys.argv = list(request["argv"])
    sys.path.insert(0, request["path0"])
    for name in [n for n in sys.modules if n == "forgeml" or n.startswith("forgeml.")]:
        del sys.modules[name]  # ForgeML itself is imported fresh: edits are never served stale
    importlib.invalidate_caches()
    tempfile.tempdir = None  # $TMPDIR is read again
    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(line_buffering=stream.isatty())
    # What Lightning's DDP launcher and multiprocessing read to start more processes.
    main = type(sys)("__main__")
    main.__file__ = sys.argv[0]
    main.__spec__ = None
    sys.modules["__main__"] = main
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD,
                   signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    module, function = request["entry"].split(":")
    died_of = None
    try:
        getattr(importlib.import_module(module), function)()
        code = 0
    except SystemExit as done:
        code = _exit_code(done.code)
    except KeyboardInterrupt:
        traceback.print_exc()
        code, died_of = 130, signal.SIGINT
    except BaseException:  # noqa: BLE001 - what the interpreter would print and exit with
        traceback.print_exc()
        code = 1
    _finish(code, died_of)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _finish(code: int, died_of: int | None) -> None:
    """Exit as the interpreter does (join threads, atexit, flush) but without tearing down
    the preloaded modules one by one: that alone takes ~3 s and changes nothing."""
    import atexit
    import threading

    with contextlib.suppress(Exception):
        threading._shutdown()  # what Py_Finalize does first: wait for non-daemon threads
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if died_of is not None:
        signal.signal(died_of, signal.SIG_DFL)
        os.kill(os.getpid(), died_of)
    os._exit(code)


def _log(message: str) -> None:
    sys.stderr.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} forgeml-warm: {message}\n")
    sys.stderr.flush()
