"""How a stage command runs: one writer per pipeline stage (a lock), no orphans (a stage whose
`dvc` was killed stops itself), and staging leftovers of killed runs swept before writing."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig

from forgeml.errors import ForgeMLError
from forgeml.io import pid_alive, sweep_stale
from forgeml.locks import named_lock
from forgeml.stages import STAGES
from forgeml.warm import origin_pid

_WORKER_RANK_ENV = ("RANK", "LOCAL_RANK", "SLURM_PROCID")


def is_worker_rank() -> bool:
    """A DDP process other than the one that launched the stage (it shares the launcher's
    lock and outputs)."""
    return any(os.environ.get(name, "0") not in ("", "0") for name in _WORKER_RANK_ENV)


@contextmanager
def stage_guard(cfg: DictConfig, stage: str, root: Path) -> Iterator[None]:
    if is_worker_rank():
        yield
        return
    name = f"{cfg.pipeline.name}.{stage}"
    with named_lock(root, name, wait=False) as busy:
        if busy is not None:
            raise ForgeMLError(
                f"another `forgeml {stage}` of pipeline '{cfg.pipeline.name}' is running (pid "
                f"{busy.get('pid', '?')}, since {busy.get('started', '?')}) and writes the same "
                f"outputs: wait for it, or stop it (`kill {busy.get('pid', '<pid>')}`; it "
                "checkpoints and the next run resumes).")
        for key in STAGES[stage].outputs:
            if cfg.paths.get(key):
                folder = Path(cfg.paths[key]).parent
                _check_writable(folder)
                sweep_stale(folder)
        _stop_when_dvc_dies()
        yield


def _check_writable(folder: Path) -> None:
    """Before any work (hours of training): the outputs' folder must take a new file."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ForgeMLError(f"Cannot write outputs into {folder}/ ({err.strerror}): make it "
                           "writable (or point paths.* elsewhere) and rerun; nothing was "
                           "changed.") from None


def _stop_when_dvc_dies(poll_s: float = 1.0) -> None:
    """Under `dvc repro`, a stage outlives a killed `dvc` (kill -9 reaches only dvc): watch the
    dvc process and stop (SIGTERM: training checkpoints first) when it is gone."""
    if "DVC_STAGE" not in os.environ:
        return
    dvc_pid = _dvc_ancestor()
    if dvc_pid is None:
        return

    def watch() -> None:
        while pid_alive(dvc_pid) and not _is_zombie(dvc_pid):
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="forgeml-dvc-watch", daemon=True).start()


def _dvc_ancestor(levels: int = 3) -> int | None:
    pid = origin_pid()  # a warm stage's own parent is the warm server, not DVC's shell
    for _ in range(levels):
        pid = _parent(pid)
        if pid is None or pid <= 1:
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        if any(Path(os.fsdecode(part)).name == "dvc" for part in cmdline[:2]):
            return pid
    return None


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
