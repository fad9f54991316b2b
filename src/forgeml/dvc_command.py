"""The `dvc` that ForgeML runs: this environment's (as the stage commands use), else PATH's."""

from __future__ import annotations

import sys
from pathlib import Path


def dvc_executable() -> str:
    beside = Path(sys.executable).parent / "dvc"
    return str(beside) if beside.is_file() else "dvc"
