"""What DVC tells a user is true: every stage declares exactly the project files it runs and
every config key it reads, and the committed dvc.lock files match the code (a fresh clone lists
only missing outputs)."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess

import pytest

import stage_deps
from conftest import BIN, REPO, run
from stage_deps import (
    DATA_DEPS,
    _reads,
    declared_files,
    declared_params,
    expected_deps,
    stage_files,
    stage_reads,
    stages,
    undeclared_reads,
)

STAGES = stages()


@pytest.mark.parametrize("dvc_file,stage,task,deps", STAGES,
                         ids=[f"{f}:{s}" for f, s, _, _ in STAGES])
def test_every_stage_declares_exactly_the_files_it_runs(dvc_file, stage, task, deps):
    declared, other = declared_files(deps)
    expected = stage_files(task, stage)
    missing, extra = sorted(expected - declared), sorted(declared - expected)
    assert not missing and not extra, (
        f"{dvc_file} stage '{stage}': missing deps {missing}, deps it never runs {extra}. "
        "Run `python tests/stage_deps.py` to rewrite them.")
    assert other == DATA_DEPS.get(stage, set())
    assert all((REPO / d).exists() for d in other)


def test_the_check_notices_an_import_missing_from_the_deps():
    dvc_file, stage, task, deps = next(s for s in STAGES if s[1] == "evaluate")
    dropped = "src/forgeml/metrics.py"
    assert dropped in expected_deps(task, stage)
    declared, _ = declared_files([d for d in deps if d != dropped])
    assert stage_files(task, stage) - declared == {dropped}


@pytest.mark.parametrize("dvc_file,stage,task,deps", STAGES,
                         ids=[f"{f}:{s}" for f, s, _, _ in STAGES])
def test_every_stage_declares_the_params_it_reads(dvc_file, stage, task, deps):
    missing = undeclared_reads(dvc_file, stage, task)
    assert not missing, (
        f"{dvc_file} stage '{stage}' reads {missing} but does not declare them in params: a "
        "change there would not rerun it. Run `python tests/stage_deps.py` to add them.")


def test_the_params_check_follows_aliases_and_notices_a_missing_key(monkeypatch):
    code = ("def f(cfg):\n    ev = cfg.evaluate\n    n = ev.bootstrap_samples\n"
            "    cfg.get('seed')\n    OmegaConf.select(cfg, 'pipeline.task')\n"
            "    name = cfg.model._target_.rsplit('.', 1)\n")
    assert _reads(ast.parse(code).body) == {"evaluate.bootstrap_samples", "seed",
                                            "pipeline.task", "model._target_"}
    # The recommender's report says "HR@K" with K from evaluate.k: dropping it is caught.
    assert "evaluate.k" in stage_reads("recsys", "report")
    declared, paths = declared_params("pipelines/recsys/dvc.yaml", "report")
    monkeypatch.setattr(stage_deps, "declared_params",
                        lambda *_: (declared - {"evaluate.k"}, paths))
    assert undeclared_reads("pipelines/recsys/dvc.yaml", "report", "recsys") == ["evaluate.k"]


def _committed_clone(tmp_path):
    if subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"],
                      capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(REPO), str(clone)], cwd=tmp_path)
    return clone


@pytest.mark.parametrize("dvc_file", ["dvc.yaml", "pipelines/lm/dvc.yaml",
                                      "pipelines/recsys/dvc.yaml", "pipelines/sentiment/dvc.yaml",
                                      "pipelines/ssl/dvc.yaml"])
def test_a_fresh_clone_is_only_missing_outputs(tmp_path, dvc_file):
    """The committed dvc.lock matches the committed code and params: in a fresh clone DVC finds
    nothing changed, only outputs that were never pulled or computed."""
    clone = _committed_clone(tmp_path)
    status = json.loads(run([str(BIN / "dvc"), "status", "--json", dvc_file],
                            cwd=clone).stdout or "{}")
    changed = {}
    for stage, entries in status.items():
        for entry in entries:
            if not isinstance(entry, dict):
                changed.setdefault(stage, []).append(entry)
                continue
            for kind, items in entry.items():
                # Missing outputs (and upstream outputs a stage depends on) are expected.
                missing_only = kind in ("changed outs", "changed deps") and all(
                    state in ("deleted", "not in cache") for state in items.values())
                if not missing_only:
                    changed.setdefault(stage, []).append({kind: items})
    assert changed == {}, (f"{dvc_file}: dvc.lock does not match the committed code/params "
                           f"{changed}; rerun the pipeline and commit its dvc.lock.")
    shutil.rmtree(clone)
