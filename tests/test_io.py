"""Staged outputs, the atomic folder swap, the sweep of dead processes' leftovers, and the resume
folder's bookkeeping — the pieces the fault-injection tests rely on, tested directly."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from forgeml.io import output_name, replace_dir, staged_outputs, sweep_stale
from forgeml.resume import KEEP_INTERRUPTED, ResumePoint


def test_outputs_appear_together_only_when_the_block_succeeds(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), staged_outputs() as out:
        (out.dir(tmp_path / "models") / "new.txt").write_text("new")
        out.write_text(tmp_path / "metrics.json", "{}")
        raise RuntimeError("failed while logging")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]  # no staging left behind
    assert (tmp_path / "models" / "old.txt").read_text() == "old"

    with staged_outputs() as out:
        (out.dir(tmp_path / "models") / "new.txt").write_text("new")
        staged = out.write_text(tmp_path / "metrics.json", "{}")
        assert staged.name == "metrics.json"  # its real name, for MLflow, before commit
        assert not (tmp_path / "metrics.json").exists()
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["new.txt"]
    assert (tmp_path / "metrics.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "models"]


def test_replace_dir_never_leaves_the_target_missing(tmp_path):
    target, source = tmp_path / "out", tmp_path / "staged"
    target.mkdir()
    (target / "a").write_text("old")
    source.mkdir()
    (source / "a").write_text("new")
    replace_dir(source, target)
    assert (target / "a").read_text() == "new" and not source.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_sweep_removes_leftovers_of_dead_processes_only(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / f".digits.{dead}.partial").mkdir()
    (tmp_path / f".test.json.{dead}.staged").mkdir()
    mine = tmp_path / f".digits.{os.getpid()}.partial"
    mine.mkdir()
    keep = tmp_path / ".hidden"
    keep.mkdir()
    removed = sweep_stale(tmp_path)
    assert len(removed) == 2
    assert {p.name for p in tmp_path.iterdir()} == {".hidden", mine.name}


def test_errors_name_the_output_not_its_staging_path():
    assert output_name("eval/.digits.42.partial/.predictions.csv.42.staged") == "eval/digits"
    assert output_name("metrics/digits/.test.json.7.staged/test.json") == \
        "metrics/digits/test.json"
    assert output_name("models/digits/best.ckpt") == "models/digits/best.ckpt"


def test_resume_folder_keeps_only_the_newest_interrupted_trainings(tmp_path):
    base = tmp_path / ".forgeml" / "resume" / "digits"
    for index in range(KEEP_INTERRUPTED + 2):
        ResumePoint(base / f"config{index}").start(f"run{index}")
        time.sleep(0.01)  # distinct modification times
    kept = sorted(p.name for p in base.iterdir())
    # The current one and the KEEP_INTERRUPTED newest others.
    assert kept == [f"config{i}" for i in range(1, KEEP_INTERRUPTED + 2)]
    point = ResumePoint(base / "config4")
    assert point.run_id() == "run4" and point.checkpoint() is None
