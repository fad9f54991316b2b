"""Atomic outputs: every file or folder appears complete or not at all, and the outputs of one
stage are moved into place together, only after everything (MLflow logging included) succeeded."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_STAGING = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(staged|partial|old)$")


def readable_mode(folder: bool = False) -> int:
    """What open() / mkdir() give under the process's umask (0644 / 0755 with the usual 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if folder else 0o666) & ~mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `path` through a temporary file in the same folder, fsynced, then renamed."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """`atomic_write_text` for bytes: a reader sees the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.staged")
    try:
        _write_synced(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


class StagedOutputs:
    """The outputs of one stage, written to staging paths beside their targets; `commit` fsyncs
    them and moves them all into place, `discard` removes them. A staged file keeps its real
    name inside its staging folder, so it can be logged to MLflow before it is committed."""

    def __init__(self) -> None:
        self._moves: list[tuple[Path, Path]] = []  # (staged, target)

    def dir(self, target: str | Path) -> Path:
        target = Path(target)
        staged = _staging_path(target, "partial")
        staged.mkdir(mode=0o755)
        self._moves.append((staged, target))
        return staged

    def file(self, target: str | Path) -> Path:
        target = Path(target)
        holder = _staging_path(target, "staged")
        holder.mkdir(mode=0o755)
        self._moves.append((holder / target.name, target))
        return holder / target.name

    def write_text(self, target: str | Path, text: str) -> Path:
        staged = self.file(target)
        staged.write_text(text, encoding="utf-8")
        return staged

    def write_json(self, target: str | Path, data: Any) -> Path:
        return self.write_text(target, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def commit(self) -> None:
        for staged, _ in self._moves:
            _fsync_tree(staged)
        for staged, target in self._moves:
            if staged.is_dir():
                replace_dir(staged, target)
            else:
                os.replace(staged, target)
                staged.parent.rmdir()
            _fsync_dir(target.parent)
        self._moves.clear()

    def discard(self) -> None:
        for staged, _ in self._moves:
            shutil.rmtree(staged if staged.is_dir() else staged.parent, ignore_errors=True)
        self._moves.clear()


@contextlib.contextmanager
def staged_outputs() -> Iterator[StagedOutputs]:
    """Outputs that appear together when the block succeeds and not at all when it fails."""
    outputs = StagedOutputs()
    try:
        yield outputs
    except BaseException:
        outputs.discard()
        raise
    outputs.commit()


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh staging folder that replaces `path` only if the block succeeds."""
    with staged_outputs() as outputs:
        yield outputs.dir(path)


def replace_dir(source: Path, target: Path) -> None:
    """Move `source` onto `target`. Where the kernel can, the two are swapped in one step
    (renameat2 RENAME_EXCHANGE), so `target` never goes missing; the old one is then removed."""
    source, target = Path(source), Path(target)
    if not target.exists():
        os.replace(source, target)
        return
    if _exchange(source, target):
        shutil.rmtree(source, ignore_errors=True)  # `source` now holds the old target
        return
    old = _staging_path(target, "old")
    os.replace(target, old)
    os.replace(source, target)
    shutil.rmtree(old, ignore_errors=True)


def sweep_stale(folder: str | Path) -> list[Path]:
    """Remove staging leftovers of processes that no longer exist (a killed stage)."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = _STAGING.match(entry.name)
        if match and not pid_alive(int(match["pid"])):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
            removed.append(entry)
    return removed


def output_name(path: str | os.PathLike) -> str:
    """The output a staging path stands for (what an error message should name)."""
    path = Path(os.fsdecode(path))
    for part in reversed((path, *path.parents)):  # the outermost staging folder or file
        match = _STAGING.match(part.name)
        if match:
            return str(part.with_name(match["name"]))
    return str(path)


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


# --- helpers ----------------------------------------------------------------------------------
def _staging_path(target: Path, kind: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(target.parent)
    staged = target.with_name(f".{target.name}.{os.getpid()}.{kind}")
    if staged.exists():  # this very process staged it before and failed
        shutil.rmtree(staged) if staged.is_dir() else staged.unlink()
    return staged


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_synced(path: Path, data: bytes) -> None:
    try:
        with open(path, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        if err.filename is None:  # write() errors (a full disk) do not name the file
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise


def _fsync_tree(path: Path) -> None:
    paths = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for file in paths:
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    if path.is_dir():
        _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems refuse fsync on folders
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where unsupported."""
    renameat2 = getattr(_libc, "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))
