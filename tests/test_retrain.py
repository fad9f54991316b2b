"""Scheduled retraining through the real CLI (`forgeml retrain`, `forgeml rollback`) on the digits
pipeline with a local sqlite MLflow, and once against an MLflow server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from mlflow.tracking import MlflowClient

from conftest import BIN, free_port, killed_at, make_project, run, wait_until_up

FORGEML = str(BIN / "forgeml")
QUICK = ["--set", "trainer.max_epochs=2", "--set", "trainer.enable_progress_bar=false"]


def _retrain(project, *args, check=True, env=None):
    return run([FORGEML, "retrain", "digits", *args], cwd=project, check=check, env=env)


def _registry(project, uri=None):
    return MlflowClient(tracking_uri=uri or f"sqlite:///{project / 'mlflow.db'}")


def _champion(client):
    return str(client.get_model_version_by_alias("digits", "champion").version)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("retrain"))
    settings = project / "conf/retrain/digits.yaml"
    settings.write_text(settings.read_text().replace("floor: 0.9", "floor: 0.05"))
    # The team's DVC remote (a shared folder), committed with the project.
    run([str(BIN / "dvc"), "remote", "add", "-d", "team", str(project.parent / "remote")],
        cwd=project)
    run(["git", "-c", "user.email=t@forgeml.test", "-c", "user.name=test", "commit", "-qam",
         "team remote"], cwd=project)
    return project


@pytest.mark.slow  # each retrain reruns the pipeline: ~30-45 s
def test_first_run_promotes_a_champion_above_the_floor(project):
    # A deliberately weak first model: a tiny learning rate for one epoch.
    out = _retrain(project, "--set", "optimizer.lr=0.00003", "--set", "trainer.max_epochs=1",
                   "--set", "trainer.enable_progress_bar=false").stdout
    assert "decision: promoted" in out and "no champion yet" in out
    client = _registry(project)
    assert _champion(client) == "1"
    assert client.get_model_version("digits", "1").tags["forgeml.retrain.decision"] == "promoted"
    assert (project / "retrain/digits/retraining.html").is_file()


@pytest.mark.slow  # each retrain reruns the pipeline: ~30-45 s
def test_a_better_challenger_is_promoted(project):
    out = _retrain(project, *QUICK).stdout
    assert "decision: promoted" in out
    assert "pushed the outputs of dvc.yaml to the DVC remote 'team'" in out
    client = _registry(project)
    assert _champion(client) == "2"
    assert str(client.get_model_version_by_alias("digits", "challenger").version) == "2"
    old = client.get_model_version("digits", "1").tags
    assert old["forgeml.retrain.last_outcome"] == "replaced"
    # The champion's registry page says what it scored, on which data, and why it won.
    champion = client.get_model_version("digits", "2")
    assert champion.description.startswith(f"Run {champion.run_id} on data ")
    assert "test acc 0." in champion.description and "interval" in champion.description
    assert "Promoted to champion: challenger acc" in champion.description


@pytest.mark.slow  # a clone and a pull: ~15 s
def test_a_teammates_fresh_clone_pulls_the_pushed_outputs_and_reruns_nothing(project, tmp_path):
    # What a team commits after a run: its lock and its numbers.
    run(["git", "add", "dvc.lock", "params.yaml", "metrics", "plots"], cwd=project)
    run(["git", "-c", "user.email=t@forgeml.test", "-c", "user.name=test", "commit", "-qm",
         "the promoted run"], cwd=project)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], cwd=tmp_path)
    dvc = str(BIN / "dvc")
    before = run([dvc, "status", "dvc.yaml"], cwd=clone).stdout
    assert "missing" in before.lower() or "not in cache" in before
    run([dvc, "pull", "dvc.yaml"], cwd=clone)
    assert run([dvc, "status", "dvc.yaml"], cwd=clone).stdout.strip().endswith("up to date.")
    repro = run([dvc, "repro", "dvc.yaml"], cwd=clone)
    assert "Running stage" not in repro.stdout, repro.stdout
    assert (clone / "models/digits/run.json").read_text() == \
        (project / "models/digits/run.json").read_text()


@pytest.mark.slow  # each retrain reruns the pipeline: ~30-45 s
def test_a_worse_challenger_is_not_promoted_and_the_reason_is_recorded(project):
    out = _retrain(project, "--set", "optimizer.lr=0.000001", *QUICK).stdout
    assert "decision: rejected" in out
    client = _registry(project)
    assert _champion(client) == "2"
    tags = client.get_model_version("digits", "3").tags
    assert tags["forgeml.retrain.decision"] == "rejected"
    assert "vs champion v2" in tags["forgeml.retrain.reason"]
    markdown = (project / "retrain/digits/retraining.md").read_text()
    assert "## This run: rejected" in markdown and "| Champion (version 2)" in markdown
    assert markdown.count("| promoted |") == 2  # the history of earlier decisions


@pytest.mark.slow  # each retrain reruns the pipeline: ~30-45 s
def test_nothing_changed_is_skipped(project):
    before = len(_registry(project).search_model_versions("name='digits'"))
    out = _retrain(project).stdout
    assert "nothing changed" in out and "skipped" in out
    assert len(_registry(project).search_model_versions("name='digits'")) == before


@pytest.mark.slow  # each retrain reruns the pipeline: ~30-45 s
def test_a_retrain_killed_after_registration_is_judged_by_the_next_one(project):
    killed = _retrain(project, "--force", *QUICK, check=False, env=killed_at(
        "mlflow.tracking.client:MlflowClient.create_model_version@1:after"))
    assert killed.returncode == -signal.SIGKILL
    client = _registry(project)
    assert _champion(client) == "2"
    assert "forgeml.retrain.decision" not in client.get_model_version("digits", "4").tags
    out = _retrain(project).stdout
    assert "version 4" in out and "never judged" in out
    judged = client.get_model_version("digits", "4")
    assert judged.tags["forgeml.retrain.decision"] == "rejected"  # the same model as version 2
    assert _champion(client) == "2" and "champion" not in judged.aliases
    assert "nothing changed" in out  # and the pipeline itself is not rerun


@pytest.mark.slow  # each retrain reruns the pipeline: ~30-45 s
def test_rollback_points_champion_at_the_previous_champion(project):
    out = run([FORGEML, "rollback", "digits"], cwd=project).stdout
    assert "from version 2 back to version 1" in out
    assert _champion(_registry(project)) == "1"
    again = run([FORGEML, "rollback", "digits"], cwd=project, check=False)
    assert again.returncode == 2 and "no previous champion" in again.stderr


def _orphan_run(project) -> str:
    """A run left RUNNING by a process that is gone (a retrain killed during training)."""
    import socket

    dead = subprocess.Popen(["true"])
    dead.wait()
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("digits").experiment_id
    run_id = client.create_run(experiment, tags={"forgeml.host": socket.gethostname(),
                                                 "forgeml.pid": str(dead.pid)}).info.run_id
    assert client.get_run(run_id).info.status == "RUNNING"
    return run_id


@pytest.mark.slow  # after the retrains and the rollback above (nothing changed since)
@pytest.mark.parametrize("command", [["retrain", "digits"], ["rollback", "digits"],
                                     ["evaluate"]])
def test_every_retrain_rollback_and_stage_start_marks_dead_runs_killed(project, command):
    orphan = _orphan_run(project)
    result = run([FORGEML, *command], cwd=project, check=False)
    assert "Traceback" not in result.stderr
    status = MlflowClient(f"sqlite:///{project / 'mlflow.db'}").get_run(orphan)
    assert status.info.status == "KILLED"
    assert "marked KILLED by the next start" in status.data.tags["forgeml.killed_reason"]


@pytest.mark.slow  # each runs the pipeline twice in fresh projects
def test_two_concurrent_retrains_run_exactly_once(tmp_path):
    project = make_project(tmp_path / "concurrent")
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    env.update(PATH=f"{BIN}{os.pathsep}{env['PATH']}", PYTHONWARNINGS="ignore")
    command = [FORGEML, "retrain", "digits", *QUICK]
    first = subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    lock_info = project / ".forgeml/locks/digits.json"
    deadline = time.time() + 60
    while not lock_info.exists() and time.time() < deadline:
        time.sleep(0.2)
    second = run(command, cwd=project)
    assert "another retrain of 'digits' is running" in second.stdout
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert "decision: promoted" in out
    assert len(_registry(project).search_model_versions("name='digits'")) == 1
    # The lock is free again: a stale lock file from a dead process does not block either.
    lock_info.write_text(json.dumps({"pid": 999999, "started": "long ago"}))
    assert "nothing changed" in _retrain(project).stdout


@pytest.mark.long  # the team-server test retrains against a server in CI; rolling windows: ~5 min
@pytest.mark.slow  # each runs the pipeline twice in fresh projects
def test_retrain_works_against_an_mlflow_server(tmp_path):
    project = make_project(tmp_path / "served")
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--backend-store-uri",
         f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination",
         str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers",
         "1"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{port}"
    try:
        assert wait_until_up(f"{uri}/health", timeout_s=60)
        out = _retrain(project, *QUICK, env={"MLFLOW_TRACKING_URI": uri}).stdout
        assert "decision: promoted" in out
        assert _champion(_registry(project, uri)) == "1"
        assert not (project / "mlflow.db").exists()  # everything went to the server
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.long  # the team-server test retrains against a server in CI; rolling windows: ~5 min
@pytest.mark.slow
def test_rolling_recommender_retrains_rescore_the_champion_on_each_new_window(tmp_path):
    project = make_project(tmp_path / "rolling")
    settings = project / "conf/retrain/recsys.yaml"
    settings.write_text(settings.read_text().replace("floor: 0.3", "floor: 0.0"))
    quick = ["--set", "trainer.max_epochs=2", "--set", "trainer.enable_progress_bar=false"]
    first = run([FORGEML, "retrain", "recsys", "--as-of", "1998-01-01", *quick], cwd=project)
    assert "decision: promoted" in first.stdout
    second = run([FORGEML, "retrain", "recsys", "--as-of", "1998-02-01", *quick], cwd=project)
    assert "vs champion v1" in second.stdout  # re-scored on the February window
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("recsys-retrain")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["forgeml.retrain.as_of"] for r in runs) == ["1998-01-01",
                                                                          "1998-02-01"]
    assert all("champion" in r.data.metrics for r in runs
               if r.data.tags["forgeml.retrain.as_of"] == "1998-02-01")
    history = (project / "retrain/recsys/retraining.md").read_text()
    assert "| 1998-01-01 | promoted |" in history and "1998-02-01" in history


def test_an_unreachable_dvc_remote_is_one_line_after_the_decision(tmp_path):
    from forgeml.errors import ForgeMLError
    from forgeml.retrain.job import push_outputs

    dvc = str(BIN / "dvc")
    run(["git", "init", "-q"], cwd=tmp_path)
    run([dvc, "init", "-q"], cwd=tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages:\n  make:\n    cmd: echo hi > out.txt\n"
                                       "    outs:\n      - out.txt\n")
    run([dvc, "repro"], cwd=tmp_path)
    said = []
    push_outputs(tmp_path, "dvc.yaml", said.append)  # no remote: nothing to do
    assert said == []
    (tmp_path / "a-file").write_text("")
    run([dvc, "remote", "add", "-d", "team", str(tmp_path / "a-file" / "remote")], cwd=tmp_path)
    with pytest.raises(ForgeMLError, match="pushing the outputs to the DVC remote 'team' failed"):
        push_outputs(tmp_path, "dvc.yaml", said.append)
    assert (tmp_path / "out.txt").read_text() == "hi\n"  # nothing lost
