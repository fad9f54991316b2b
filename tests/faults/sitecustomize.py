"""Test-side fault injection: SIGKILL (or SIGTERM) this process at a named point of the real
code.

Loaded by Python at start-up when tests put this folder on PYTHONPATH. FORGEML_KILL_AT names
the point as `module:Qualified.name@N[:after]` — the N-th call of that function, before it runs
(or once it returned, with `:after`); FORGEML_KILL_RANK limits it to one DDP rank. The function
is wrapped when its module is first imported. Nothing in ForgeML reads these variables."""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import signal
import sys

_SPEC = os.environ.get("FORGEML_KILL_AT", "")
_RANK = os.environ.get("FORGEML_KILL_RANK")


def _rank() -> str:
    """The global rank (torchrun, srun), else the local one (Lightning's own launcher)."""
    return os.environ.get("RANK") or os.environ.get("LOCAL_RANK", "0")


def _kill() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    # FORGEML_KILL_SIGNAL=TERM: a polite stop (a pre-empted node) instead of kill -9.
    os.kill(os.getpid(), getattr(signal, f"SIG{os.environ.get('FORGEML_KILL_SIGNAL', 'KILL')}"))


def _wrap(owner, attr: str, nth: int, after: bool) -> None:
    original = getattr(owner, attr)
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        hit = calls[0] == nth and (_RANK is None or _rank() == _RANK)
        if hit and not after:
            _kill()
        result = original(*args, **kwargs)
        if hit:
            _kill()
        return result

    setattr(owner, attr, wrapper)


def _install(spec: str) -> None:
    target, _, rest = spec.partition("@")
    count, _, when = rest.partition(":")
    module_name, _, qualname = target.partition(":")
    *path, attr = qualname.split(".")

    def patch(module) -> None:
        owner = module
        for name in path:
            owner = getattr(owner, name)
        _wrap(owner, attr, int(count or 1), when == "after")

    if module_name in sys.modules:
        patch(sys.modules[module_name])
        return

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, import_path, target=None):
            if name != module_name:
                return None
            sys.meta_path.remove(self)
            found = importlib.util.find_spec(name)
            run_module = found.loader.exec_module

            def exec_module(module):
                run_module(module)
                patch(module)

            found.loader.exec_module = exec_module
            return found

    sys.meta_path.insert(0, Finder())


if _SPEC:
    _install(_SPEC)
