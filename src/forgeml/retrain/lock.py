"""One retrain per pipeline at a time. The lock is an OS file lock (flock): the kernel drops it
when its process dies, so a lock left by a crashed or killed job never blocks the next one."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout


@contextmanager
def pipeline_lock(root: Path, pipeline: str, wait: bool) -> Iterator[dict | None]:
    """Yields None once this process holds the lock; when another retrain holds it (and `wait`
    is false), yields that holder's record ({} if unknown) without waiting."""
    folder = root / ".forgeml" / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / f"{pipeline}.lock")
    info = folder / f"{pipeline}.json"
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        yield holder(root, pipeline) or {}
        return
    record = {"pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    info.write_text(json.dumps(record))
    try:
        yield None
    finally:
        info.unlink(missing_ok=True)
        lock.release()


def holder(root: Path, pipeline: str) -> dict | None:
    path = root / ".forgeml" / "locks" / f"{pipeline}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
