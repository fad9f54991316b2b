"""Nothing lost: the real CLI is SIGKILLed at named points (tests/faults/sitecustomize.py) and
rerun; the invariants are checked as a user would see them — the resumed MLflow run is the
killed one, no run is left RUNNING, results equal an uninterrupted run's, previous outputs are
intact after every failure, and the champion is always a version that passed its gate."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import (
    BIN,
    killed_at,
    make_project,
    run,
    wait_for_checkpoint,
    wait_until_dead,
)
from forgeml.tracking import TOP_LEVEL

FORGEML, DVC = str(BIN / "forgeml"), str(BIN / "dvc")
MID_EPOCH = "forgeml.training.classifier:Classifier.training_step@100"  # epoch 3 of 5 (40 steps)
AFTER_CHECKPOINT = ("pytorch_lightning.callbacks.model_checkpoint:"
                    "ModelCheckpoint._save_last_checkpoint@3:after")
BEFORE_COMMIT = "forgeml.io:StagedOutputs.commit@1"  # outputs staged and logged, not in place


def client(project: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def runs(project: Path, experiment: str = "digits") -> list:
    found = client(project).get_experiment_by_name(experiment)
    return client(project).search_runs([found.experiment_id], filter_string=TOP_LEVEL) \
        if found else []


def running(project: Path) -> list[str]:
    return [r.info.run_id for r in runs(project) if r.info.status == "RUNNING"]


def digest(*paths: Path) -> str:
    """One hash over files and folders: 'unchanged' means byte for byte."""
    sha = hashlib.sha256()
    for root in paths:
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            sha.update(str(path.relative_to(root.parent)).encode())
            sha.update(path.read_bytes())
    return sha.hexdigest()


def run_json(project: Path) -> dict:
    return json.loads((project / "models/digits/run.json").read_text())


def staging_leftovers(project: Path) -> list[str]:
    return [str(p) for p in project.rglob(".*.*.partial")] + \
        [str(p) for p in project.rglob(".*.*.staged")]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The digits smoke pipeline, run once uninterrupted: the reference for every resume."""
    project = make_project(tmp_path_factory.mktemp("faults"))
    run([DVC, "repro"], cwd=project)
    return project


# First after the fixture, whose `dvc repro` left dvc.lock current: run later, after the
# kill tests have retrained, its opening `dvc repro` reruns the pipeline (~40 s).
def test_a_failing_stage_under_dvc_keeps_the_last_good_outputs_and_dvc_says_so(project):
    outputs = [project / "models/digits", project / "metrics/digits/train.json",
               project / "plots/digits/learning_curve.csv"]
    run([DVC, "repro"], cwd=project)  # bring dvc.lock up to date with the outputs
    before = digest(*outputs)
    params = project / "params.yaml"
    original = params.read_text()
    params.write_text(original.replace("max_epochs: 5", "max_epochs: banana"))
    try:
        failed = run([DVC, "repro"], cwd=project, check=False)
        assert failed.returncode != 0
        assert "trainer.max_epochs must be an integer >= 1 (got 'banana')" in failed.stderr
        assert "Traceback" not in failed.stderr
        assert digest(*outputs) == before  # DVC did not delete them (persist) and we kept them
        status = run([DVC, "status"], cwd=project).stdout
        assert "train:" in status and "trainer" in status  # DVC knows train must rerun
    finally:
        params.write_text(original)
    assert "up to date" in run([DVC, "repro"], cwd=project).stdout


@pytest.mark.parametrize("point", [
    MID_EPOCH, pytest.param(AFTER_CHECKPOINT, marks=pytest.mark.slow)],  # test budget
    ids=["mid-epoch", "right-after-checkpoint"])
def test_killed_training_resumes_the_same_run_and_matches_an_uninterrupted_one(project, point):
    reference = run_json(project)
    outputs = [project / "models/digits", project / "metrics/digits/train.json",
               project / "plots/digits/learning_curve.csv"]
    before = digest(*outputs)

    killed = run([FORGEML, "train"], cwd=project, check=False, env=killed_at(point))
    assert killed.returncode == -signal.SIGKILL
    assert digest(*outputs) == before  # the last good outputs are untouched
    [dead] = running(project)  # the killed run: params were logged before fitting
    assert client(project).get_run(dead).data.params["trainer.max_epochs"] == "5"

    resumed = run([FORGEML, "train"], cwd=project)
    assert f"resuming MLflow run {dead}" in resumed.stdout
    record = run_json(project)
    assert record["run_id"] == dead and not running(project)
    mlflow_run = client(project).get_run(dead)
    assert mlflow_run.info.status == "FINISHED"
    assert int(mlflow_run.data.tags["forgeml.resume_count"]) == 1
    # Exactly the uninterrupted result (CPU, fixed seed, RNG state carried in the checkpoint).
    assert [round(h["val_loss"], 5) for h in record["history"]] == \
        [round(h["val_loss"], 5) for h in reference["history"]]
    assert record["best_val_acc"] == pytest.approx(reference["best_val_acc"], abs=1e-6)
    # One point per epoch in MLflow: nothing logged twice.
    steps = [m.step for m in client(project).get_metric_history(dead, "val/loss")]
    assert len(steps) == len(set(steps)) == 5
    assert not staging_leftovers(project)


@pytest.mark.slow  # test budget: the same staging as the evaluate case below, plus the resume
def test_a_kill_while_committing_train_outputs_keeps_the_old_ones_and_the_rerun_finishes(project):
    before = digest(project / "models/digits", project / "metrics/digits/train.json")
    killed = run([FORGEML, "train"], cwd=project, check=False, env=killed_at(BEFORE_COMMIT))
    assert killed.returncode == -signal.SIGKILL
    assert digest(project / "models/digits", project / "metrics/digits/train.json") == before
    [dead] = running(project)
    rerun = run([FORGEML, "train"], cwd=project)
    assert f"resuming MLflow run {dead}" in rerun.stdout  # training itself is not repeated
    assert run_json(project)["run_id"] == dead and not running(project)
    assert not staging_leftovers(project)


@pytest.mark.parametrize("stage,outputs", [
    # One mechanism (staged outputs) for every stage: two of them in the slow tier (budget).
    pytest.param("prepare", ["data/prepared/digits"], marks=pytest.mark.slow),
    ("evaluate", ["eval/digits", "metrics/digits/test.json", "plots/digits/confusion.csv"]),
    pytest.param("report", ["reports/digits"], marks=pytest.mark.slow),
])
def test_a_kill_while_a_stage_writes_leaves_its_previous_outputs_intact(project, stage, outputs):
    paths = [project / p for p in outputs]
    before = digest(*paths)
    killed = run([FORGEML, stage], cwd=project, check=False, env=killed_at(BEFORE_COMMIT))
    assert killed.returncode == -signal.SIGKILL
    assert digest(*paths) == before
    assert staging_leftovers(project)  # the killed process's staging folder is still there...
    run([FORGEML, stage], cwd=project)
    assert not staging_leftovers(project)  # ...and the next run sweeps it


@pytest.mark.slow
def test_one_writer_per_stage_and_a_stage_orphaned_by_a_killed_dvc_stops(project):
    params = project / "params.yaml"
    original = params.read_text()
    params.write_text(original.replace("max_epochs: 5", "max_epochs: 400"))  # a long train
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    dvc = subprocess.Popen([DVC, "repro"], cwd=project, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        trainer = _wait_for_training(project)
        second = run([FORGEML, "train"], cwd=project, check=False)
        assert second.returncode == 2
        assert "another `forgeml train` of pipeline 'digits' is running" in second.stderr
        os.kill(dvc.pid, signal.SIGKILL)
        dvc.wait()
        assert wait_until_dead(trainer, 60), "the orphaned trainer kept running"
        [stopped] = [r for r in runs(project) if r.info.status == "FAILED"
                     and r.data.params.get("trainer.max_epochs") == "400"]
        folder = next((project / ".forgeml/resume/digits").glob("*"))
        # It checkpointed as it stopped.
        assert (folder / "checkpoints" / "on_exception.ckpt").is_file()
        assert stopped.info.run_id == json.loads((folder / "state.json").read_text())["run_id"]
    finally:
        if dvc.poll() is None:
            dvc.kill()
        params.write_text(original)


def _wait_for_training(project: Path) -> int:
    """The training's pid, once it holds the stage lock and has checkpointed."""
    wait_for_checkpoint(project)
    return json.loads((project / ".forgeml/locks/digits.train.json").read_text())["pid"]


# --- scheduled retraining and rollback, killed between registry calls -------------------------
ALIAS_CALL = "mlflow.tracking.client:MlflowClient.set_registered_model_alias@{n}"
WEAK = ["--set", "optimizer.lr=0.00003", "--set", "trainer.max_epochs=1",
        "--set", "trainer.enable_progress_bar=false"]
QUICK = ["--set", "trainer.max_epochs=2", "--set", "trainer.enable_progress_bar=false"]
WORSE = ["--set", "optimizer.lr=0.000001", *QUICK]


@pytest.fixture(scope="module")
def registry_project(tmp_path_factory) -> Path:
    project = make_project(tmp_path_factory.mktemp("registry-faults"))
    settings = project / "conf/retrain/digits.yaml"
    settings.write_text(settings.read_text().replace("floor: 0.9", "floor: 0.05"))
    return project


def retrain(project: Path, *args: str, kill: str | None = None):
    command = [FORGEML, "retrain", "digits", *args]
    if kill is None:
        return run(command, cwd=project)
    result = run(command, cwd=project, check=False, env=killed_at(kill))
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    return result


def champion(project: Path) -> str | None:
    try:
        return str(client(project).get_model_version_by_alias("digits", "champion").version)
    except Exception:  # noqa: BLE001 - no registered model or no alias yet
        return None


def decision(project: Path, version: str) -> str | None:
    return client(project).get_model_version("digits", version).tags.get(
        "forgeml.retrain.decision")


@pytest.mark.slow  # retrains that rerun the pipeline: ~30-40 s each
def test_killed_before_registering_the_next_retrain_registers_and_judges(registry_project):
    retrain(registry_project, *WEAK, kill="forgeml.retrain.registry:register@1")
    assert champion(registry_project) is None
    out = retrain(registry_project).stdout
    assert "was never registered" in out and "decision: promoted" in out
    assert champion(registry_project) == "1" and decision(registry_project, "1") == "promoted"


@pytest.mark.slow  # retrains that rerun the pipeline: ~30-40 s each
def test_killed_between_decision_and_alias_the_next_run_finishes_the_promotion(registry_project):
    # Alias calls: 1 = challenger (register), 2 = champion (the promotion).
    retrain(registry_project, *QUICK, kill=ALIAS_CALL.format(n=2))
    assert decision(registry_project, "2") == "promoted" and champion(registry_project) == "1"
    out = retrain(registry_project).stdout
    assert "finished an interrupted promotion: champion version 1 -> 2" in out
    assert champion(registry_project) == "2"


@pytest.mark.slow  # retrains that rerun the pipeline: ~30-40 s each
def test_killed_while_judging_the_challenger_is_judged_next_time(registry_project):
    retrain(registry_project, *WORSE, kill="forgeml.retrain.scoring:per_example@1")
    assert decision(registry_project, "3") is None and champion(registry_project) == "2"
    out = retrain(registry_project).stdout
    assert "version 3" in out and "never judged" in out
    assert decision(registry_project, "3") == "rejected" and champion(registry_project) == "2"


@pytest.mark.slow  # retrains that rerun the pipeline: ~30-40 s each
def test_a_killed_rollback_is_finished_and_rollback_never_moves_forward(registry_project):
    killed = run([FORGEML, "rollback", "digits"], cwd=registry_project, check=False,
                 env=killed_at(ALIAS_CALL.format(n=1)))
    assert killed.returncode == -signal.SIGKILL
    assert champion(registry_project) == "2"  # tagged rolled back, alias not moved yet
    out = run([FORGEML, "rollback", "digits"], cwd=registry_project).stdout
    assert "finished an interrupted rollback: champion version 2 -> 1" in out
    assert champion(registry_project) == "1"
    again = run([FORGEML, "rollback", "digits"], cwd=registry_project, check=False)
    assert again.returncode == 2 and "no previous champion" in again.stderr
    assert champion(registry_project) == "1"  # never forward to 2
    # Every champion there ever was passed its gate.
    for version in ("1", "2"):
        assert decision(registry_project, version) == "promoted"


# --- operational faults: one clear line, exit 2, nothing lost ---------------------------------
def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])  # as if killed while writing it


def _not_lightning(path: Path) -> None:
    # Loads with weights_only=True, but is not a Lightning checkpoint (another tool wrote it)
    import torch

    torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 3}, path)


@pytest.mark.parametrize("spoil,why", [(_truncated, "unreadable"),
                                       (_not_lightning, "not a Lightning checkpoint")])
def test_a_bad_resume_checkpoint_starts_afresh_and_the_dead_run_is_marked_killed(project, spoil,
                                                                                why):
    killed = run([FORGEML, "train"], cwd=project, check=False, env=killed_at(MID_EPOCH))
    assert killed.returncode == -signal.SIGKILL
    [dead] = running(project)
    [last] = [path for path in (project / ".forgeml/resume/digits").glob("*/checkpoints/last.ckpt")
              if json.loads((path.parents[1] / "state.json").read_text())["run_id"] == dead]
    spoil(last)
    rerun = run([FORGEML, "train"], cwd=project)
    assert "not resuming from checkpoint" in rerun.stderr and why in rerun.stderr
    assert "resuming MLflow run" not in rerun.stdout and "Traceback" not in rerun.stderr
    fresh = run_json(project)["run_id"]
    assert fresh != dead and not running(project)
    dead_run = client(project).get_run(dead)
    assert dead_run.info.status == "KILLED"
    assert "marked KILLED by the next start" in dead_run.data.tags["forgeml.killed_reason"]


@pytest.mark.parametrize("override,message", [
    ("trainer.max_epochs=0", "trainer.max_epochs must be an integer >= 1 (got 0)"),
    ("trainer.precision=17", "trainer.precision '17' is not one of"),
    ("trainer.devices=0", "trainer.devices must be 'auto', a count >= 1"),
])
def test_bad_trainer_values_are_refused_when_composing(project, tmp_path, override, message):
    result = run([FORGEML, "compose", override, "-o", str(tmp_path / "p.yaml")], cwd=project,
                 check=False)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "p.yaml").exists()


def _evaluate_outputs(project: Path) -> list[Path]:
    return [project / "eval/digits", project / "metrics/digits/test.json",
            project / "plots/digits/confusion.csv"]


def test_a_truncated_model_checkpoint_is_refused_with_its_name(project):
    best = project / "models/digits/best.ckpt"
    saved = best.read_bytes()
    before = digest(*_evaluate_outputs(project))
    best.write_bytes(saved[:2000])
    try:
        result = run([FORGEML, "evaluate"], cwd=project, check=False)
    finally:
        best.write_bytes(saved)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "models/digits/best.ckpt is unreadable" in result.stderr
    assert digest(*_evaluate_outputs(project)) == before


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_broken_tracking_database_is_named_and_nothing_is_written(project, damage):
    database = project / "mlflow.db"
    saved = database.read_bytes()
    before = digest(*_evaluate_outputs(project))
    database.write_bytes(os.urandom(8192) if damage == "garbage" else saved[:4096])
    try:
        result = run([FORGEML, "evaluate"], cwd=project, check=False)
    finally:
        database.write_bytes(saved)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"The MLflow tracking store sqlite:///{database} cannot be used" in result.stderr
    assert digest(*_evaluate_outputs(project)) == before


def test_a_database_uri_without_its_driver_says_what_to_install_and_hides_the_password(project):
    uri = "postgresql://forgeml:canary-s3cret@127.0.0.1:5/mlflow"
    result = run([FORGEML, "evaluate"], cwd=project, check=False,
                 env={"MLFLOW_TRACKING_URI": uri})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "pip install" in result.stderr and "forgeml:***@127.0.0.1:5" in result.stderr
    assert "canary-s3cret" not in result.stderr + result.stdout


def _in_own_mounts(project: Path, script: str):
    """Run `script` in a private mount namespace (a tmpfs or read-only bind mount that only
    it sees); skipped where mount namespaces are not allowed."""
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs mount namespaces (unshare -m) to build a full or read-only disk")
    return run(["unshare", "-m", "sh", "-c", script], cwd=project, check=False)


def test_a_full_disk_gives_one_line_and_keeps_the_previous_evaluation(project):
    before = digest(*_evaluate_outputs(project))
    result = _in_own_mounts(project, """
        rm -rf .eval-copy && cp -a eval/digits .eval-copy
        mount -t tmpfs -o size=256k tmpfs eval && cp -a .eval-copy eval/digits
        dd if=/dev/zero of=eval/filler bs=4k 2>/dev/null
        forgeml evaluate; echo "rc=$?"
        diff -r .eval-copy eval/digits && echo "previous evaluation intact"
        rm -rf .eval-copy
    """)
    assert "rc=2" in result.stdout and "Traceback" not in result.stderr
    assert "No space left on the device holding eval/digits" in result.stderr
    assert "previous evaluation intact" in result.stdout
    assert digest(*_evaluate_outputs(project)) == before


def test_a_read_only_models_folder_is_refused_before_training(project):
    before = digest(project / "models/digits")
    result = _in_own_mounts(project, """
        mount --bind models models && mount -o remount,bind,ro models
        forgeml train; echo "rc=$?"
    """)
    assert "rc=2" in result.stdout and "Traceback" not in result.stderr
    assert "Cannot write outputs into models/ (Read-only file system)" in result.stderr
    assert digest(project / "models/digits") == before
    assert not running(project)


@pytest.mark.slow  # two DDP start-ups (~20 s each)
def test_ddp_training_whose_rank_1_is_killed_resumes_the_same_run(tmp_path):
    project = make_project(tmp_path / "ddp")
    run([FORGEML, "compose", "trainer=ddp_cpu", "trainer.max_epochs=4",
         "trainer.enable_progress_bar=false"], cwd=project)
    run([FORGEML, "prepare"], cwd=project)
    train = [FORGEML, "train"]
    killed = run(train, cwd=project, check=False,
                 env=killed_at("forgeml.training.classifier:Classifier.training_step@50", rank="1"))
    assert killed.returncode == 2 and "Traceback" not in killed.stderr
    assert "A DDP process of this training stopped" in killed.stderr
    [failed] = runs(project)
    resumed = run(train, cwd=project)
    assert f"resuming MLflow run {failed.info.run_id}" in resumed.stdout
    record = run_json(project)
    assert record["run_id"] == failed.info.run_id and record["epochs_trained"] == 4
    assert [r.info.status for r in runs(project)] == ["FINISHED"]  # still one run
    steps = [m.step for m in client(project).get_metric_history(record["run_id"], "val/loss")]
    assert len(steps) == len(set(steps)) == 4


def test_metrics_for_a_run_of_another_store_say_so_and_kept_results_are_checked(tmp_path):
    from forgeml import tracking
    from forgeml.errors import TrackingError

    here, elsewhere = (f"sqlite:///{tmp_path / name}.db" for name in ("here", "elsewhere"))
    run_id = tracking.start_run(elsewhere, "ssl", {}, "finetune-child", "")
    assert tracking.run_exists(elsewhere, run_id) and not tracking.run_exists(here, run_id)
    with pytest.raises(TrackingError, match=f"{run_id} is not in the tracking store"):
        tracking.log_metrics(here, run_id, {"test/acc": 0.5})
    MlflowClient(elsewhere).delete_run(run_id)
    assert not tracking.run_exists(elsewhere, run_id)  # deleted in the UI: not reusable either
