"""Operational faults (full disk, read-only folders, broken or unreachable stores, missing
drivers) as one line that names what is wrong and what to do, instead of a traceback."""

from __future__ import annotations

import errno
import sys

from forgeml.credentials import mask_uri
from forgeml.io import output_name

_DRIVERS = {"psycopg2": "psycopg2-binary", "psycopg": "psycopg[binary]",
            "pymysql": "pymysql", "MySQLdb": "mysqlclient", "pymssql": "pymssql"}
_PREVIOUS_KEPT = "the previous outputs are untouched"


def explain(err: BaseException) -> str | None:
    """A user-facing message for a known operational fault, else None (a real bug)."""
    for cause in _chain(err):
        message = _explain_one(cause)
        if message:
            return message
    return None


def _explain_one(err: BaseException) -> str | None:
    if isinstance(err, OSError) and err.errno is not None:
        where = output_name(err.filename) if err.filename else "an output of this stage"
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            return (f"No space left on the device holding {where}: free some space (or point "
                    f"paths.* elsewhere) and rerun; {_PREVIOUS_KEPT}.")
        if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return (f"Cannot write {where} ({err.strerror}): make it writable (or point paths.* "
                    f"elsewhere) and rerun; {_PREVIOUS_KEPT}.")
    if isinstance(err, ModuleNotFoundError) and (err.name or "").split(".")[0] in _DRIVERS:
        package = _DRIVERS[err.name.split(".")[0]]
        return (f"The MLflow tracking URI {_store_in_use()} needs the "
                f"database driver '{err.name}': `pip install {package}` in this environment.")
    text = str(err)
    if isinstance(err, RuntimeError) and ("gloo" in text or "NCCL" in text) and "peer" in text:
        return ("A DDP process of this training stopped (its peer connection was lost); the "
                "checkpoints are kept: rerun the stage to resume in the same MLflow run.")
    if type(err).__name__ in ("DatabaseError", "OperationalError") or \
            "file is not a database" in text or "malformed" in text:
        reason = text.splitlines()[0] if text else type(err).__name__
        return (f"The MLflow tracking store {_store_in_use()} cannot "
                f"be used ({reason[:200]}): restore it from a backup, or move it aside to "
                "start a new store, and rerun.")
    return None


def _chain(err: BaseException):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _store_in_use() -> str:
    """The tracking store last used, masked. Only a process that imported forgeml.tracking can
    have failed on a store, so it is looked up rather than imported."""
    tracking = sys.modules.get("forgeml.tracking")
    return mask_uri(tracking.last_uri()) if tracking else "in use"
