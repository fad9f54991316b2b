"""Where a train stage keeps what it needs to survive a crash: its checkpoints and the MLflow run
they belong to, in `.forgeml/resume/<experiment>/<key>/`, outside every output DVC deletes. The
key is what determines the result (composed config, data hash, code), so a rerun with the same
inputs resumes and any change starts fresh."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from forgeml.config import config_hash
from forgeml.io import atomic_write_json

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
RESUMABLE = ("last.ckpt", "on_exception.ckpt")  # newest readable one wins
KEEP_INTERRUPTED = 3  # resume folders of other configs kept per experiment (checkpoints are big)
# `_sums`: the running epoch sums, so a run resumed mid-epoch (from on_exception.ckpt, where
# Lightning skips on_train_epoch_start) continues its epoch instead of failing without them.
PROGRESS_ATTRS = ("history", "train_samples", "train_tokens", "train_pairs", "_sums")


def code_version() -> str:
    """A digest of the installed forgeml sources: a code change must not resume old weights."""
    digest = hashlib.sha256()
    root = files("forgeml")
    for path in sorted(Path(str(root)).rglob("*.py")):
        digest.update(path.relative_to(Path(str(root))).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class ResumePoint:
    """One training's resume folder: its checkpoints and `state.json` (the MLflow run id)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.checkpoints = folder / "checkpoints"  # empty on a fresh start, as Lightning expects

    @classmethod
    def for_training(cls, cfg: DictConfig, card: dict, root: Path) -> ResumePoint:
        key = hashlib.sha256(json.dumps([config_hash(cfg), card.get("data_hash", ""),
                                         code_version()]).encode()).hexdigest()[:16]
        return cls(root / ".forgeml" / "resume" / cfg.logger.experiment_name / key)

    def run_id(self) -> str | None:
        path = self.folder / STATE_FILE
        try:
            return json.loads(path.read_text())["run_id"]
        except (OSError, ValueError, KeyError):
            return None

    def start(self, run_id: str) -> None:
        """Begin a fresh training in this folder (older checkpoints of it are dropped)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        atomic_write_json(self.folder / STATE_FILE, {"run_id": run_id})
        others = sorted((p for p in self.folder.parent.iterdir() if p != self.folder),
                        key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in others[KEEP_INTERRUPTED:]:  # oldest interrupted trainings of other configs
            shutil.rmtree(stale, ignore_errors=True)

    def checkpoint(self) -> Path | None:
        """The newest checkpoint that reads back as one this training wrote; one that does not
        (truncated by a kill while writing, or loadable but not a Lightning checkpoint of a
        ForgeML training) is set aside as `<name>.rejected` with a warning, so it never wedges
        the next run."""
        found = [self.checkpoints / name for name in RESUMABLE
                 if (self.checkpoints / name).is_file()]
        for path in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True):
            try:
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except Exception as err:  # noqa: BLE001 - any unreadable file is skipped, not fatal
                self._set_aside(path, f"unreadable: {str(err).splitlines()[0][:200]}")
                continue
            problem = checkpoint_problem(state)
            if problem:
                self._set_aside(path, problem)
                continue
            return path
        return None

    @staticmethod
    def _set_aside(path: Path, why: str) -> None:
        rejected = path.with_name(path.name + ".rejected")
        try:
            path.replace(rejected)
        except OSError:
            rejected = path
        log.warning("not resuming from checkpoint %s (%s); training starts afresh (the file is "
                    "kept as %s)", path, why, rejected.name)

    @staticmethod
    def describe(path: Path) -> str:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return f"step {state.get('global_step', '?')} (epoch index {state.get('epoch', '?')})"

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


# What a Lightning checkpoint written by `fit` holds (ForgeML's progress under "forgeml").
CHECKPOINT_KEYS = ("pytorch-lightning_version", "state_dict", "global_step", "epoch", "loops",
                   "forgeml")


def checkpoint_problem(state: Any) -> str | None:
    """Why `state` is not a resumable checkpoint of a ForgeML training, or None."""
    if not isinstance(state, dict):
        return f"holds a {type(state).__name__}, not a Lightning checkpoint"
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        return f"not a Lightning checkpoint of a ForgeML training: no {', '.join(missing)}"
    step = state["global_step"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        return f"global_step {step!r} is not a step count"
    if not isinstance(state["state_dict"], dict) or not state["state_dict"]:
        return "its state_dict holds no weights"
    return None


def progress_state(module: Any) -> dict:
    """What a task accumulates over training (history, timers, counters) and the RNG states, as
    plain containers and tensors, so a checkpoint holding it loads with weights_only=True."""
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    return {
        "progress": {name: getattr(module, name) for name in PROGRESS_ATTRS
                     if hasattr(module, name)},
        "rng": {"torch": torch.get_rng_state(),
                "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
                "python": [python_state[0], list(python_state[1]), python_state[2]]},
    }


def restore_progress(module: Any, state: dict) -> None:
    for name, value in state.get("progress", {}).items():
        setattr(module, name, value)
    rng = state.get("rng")
    if rng:
        torch.set_rng_state(rng["torch"])
        kind, keys, *rest = rng["numpy"]
        np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))
        version, internal, gauss = rng["python"]
        random.setstate((version, tuple(internal), gauss))
