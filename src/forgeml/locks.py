"""Named OS file locks (flock) under `.forgeml/locks/`: the kernel drops a lock when its process
dies, so a lock left by a crashed or killed process never blocks the next one. Used for one
retrain per pipeline and for one writer per stage's outputs."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout


@contextmanager
def named_lock(root: Path, name: str, wait: bool) -> Iterator[dict | None]:
    """Yields None once this process holds the lock; when another process holds it (and `wait`
    is false), yields that holder's record ({} if unknown) without waiting."""
    folder = root / ".forgeml" / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / f"{name}.lock")
    info = folder / f"{name}.json"
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        yield holder(root, name) or {}
        return
    record = {"pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    info.write_text(json.dumps(record))
    try:
        yield None
    finally:
        info.unlink(missing_ok=True)
        lock.release()


def pipeline_lock(root: Path, pipeline: str, wait: bool):
    """One retrain of `pipeline` at a time."""
    from forgeml.names import check_name

    return named_lock(root, check_name(pipeline), wait)


def holder(root: Path, name: str) -> dict | None:
    path = root / ".forgeml" / "locks" / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
