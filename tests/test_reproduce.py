"""`forgeml reproduce RUN_ID`: a run rebuilt from its lineage in a temporary worktree matches
its original metric for metric; a run from a dirty tree, an unknown run and a bad id are
refused with one line."""

from __future__ import annotations

import json
import subprocess

import pytest
from mlflow.tracking import MlflowClient

from conftest import BIN, make_project, run

FORGEML = str(BIN / "forgeml")
DVC = str(BIN / "dvc")


@pytest.mark.slow  # the pipeline twice (here and in the worktree): ~80 s
def test_a_clean_run_is_reproduced_exactly_and_a_dirty_one_is_refused(tmp_path):
    project = make_project(tmp_path / "project")
    run([DVC, "repro"], cwd=project)
    run_id = json.loads((project / "models/digits/run.json").read_text())["run_id"]
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    before = len(client.search_runs([client.get_run(run_id).info.experiment_id]))
    result = run([FORGEML, "reproduce", run_id], cwd=project)
    assert f"{run_id}: reproduced exactly" in result.stdout, result.stdout
    report = (project / "reports/reproduce" / f"{run_id}.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| test/")]
    assert any(line.startswith("| test/acc |") for line in rows)
    assert rows and all(line.endswith("| equal |") for line in rows), rows
    lineage = [line for line in report.splitlines()
               if line.startswith(("| code", "| data", "| config", "| environment"))]
    assert len(lineage) == 4 and all(line.endswith("| yes |") for line in lineage), lineage
    assert client.get_run(run_id).data.tags["forgeml.reproduced"] == "reproduced exactly"
    # The worktree is gone, and nothing of the reproduction landed in the project's store.
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=project, capture_output=True,
                               text=True).stdout.splitlines()
    assert len(worktrees) == 1
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == before

    # A run trained from a tree with uncommitted code changes cannot be reproduced exactly.
    with open(project / "src/forgeml/__init__.py", "a") as source:
        source.write("# an uncommitted edit\n")
    run([FORGEML, "compose", "trainer.max_epochs=2"], cwd=project)
    run([FORGEML, "train"], cwd=project)
    dirty_id = json.loads((project / "models/digits/run.json").read_text())["run_id"]
    assert dirty_id != run_id
    refused = run([FORGEML, "reproduce", dirty_id], cwd=project, check=False)
    assert refused.returncode == 2
    assert "cannot be reproduced exactly" in refused.stderr
    assert "uncommitted changes" in refused.stderr and "Traceback" not in refused.stderr
    unknown = run([FORGEML, "reproduce", "0" * 32], cwd=project, check=False)
    assert unknown.returncode == 2 and f"No run {'0' * 32}" in unknown.stderr


def test_a_bad_run_id_is_refused_in_one_line(tmp_path):
    project = make_project(tmp_path / "project")
    result = run([FORGEML, "reproduce", "latest"], cwd=project, check=False)
    assert result.returncode == 2, result.stderr
    assert "not an MLflow run id" in result.stderr and "Traceback" not in result.stderr
    assert not (project / "reports").exists()


def test_lineage_reads_git_status_whose_first_line_starts_with_a_space(tmp_path):
    """` M dvc.lock` (an unstaged change, as `dvc repro` leaves it) is the first porcelain line:
    it must read as dvc.lock, which DVC itself rewrote, not as a change to the code."""
    from forgeml.tracking import git_info

    git = ["git", "-c", "user.email=t@forgeml.test", "-c", "user.name=test"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    for name in ("dvc.lock", "train.py"):
        (tmp_path / name).write_text("v1\n")
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "c"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.lock").write_text("v2\n")
    assert git_info(tmp_path)["dirty"] == "false"
    (tmp_path / "train.py").write_text("v2\n")
    assert git_info(tmp_path)["dirty"] == "true"
