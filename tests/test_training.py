"""Training through the real CLI: failures, determinism and DDP with 2 CPU processes."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from conftest import BIN, make_project, run

FORGEML = str(BIN / "forgeml")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("training"))
    run([FORGEML, "prepare"], cwd=project)
    return project


def _store(project, name):
    return f"sqlite:///{project / name}"


def _leftovers(project):
    return [p.name for p in (project / "models").glob(".*")] if (project / "models").exists() \
        else []


def test_diverging_loss_stops_with_a_clear_error_and_no_output(prepared):
    run([FORGEML, "compose", "optimizer.lr=1e12", "-o", "diverge.yaml"], cwd=prepared)
    result = run([FORGEML, "train", "-p", "diverge.yaml"], cwd=prepared, check=False,
                 env={"MLFLOW_TRACKING_URI": _store(prepared, "diverge.db")})
    assert result.returncode != 0
    assert "diverged" in result.stderr and "optimizer.lr" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (prepared / "models/digits").exists() and not _leftovers(prepared)
    runs = MlflowClient(_store(prepared, "diverge.db")).search_runs(["1"])
    assert [r.info.status for r in runs] == ["FAILED"]


def test_unreachable_tracking_server_fails_fast(prepared):
    result = run([FORGEML, "train"], cwd=prepared, check=False,
                 env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}, timeout=120)
    assert result.returncode != 0
    assert "unreachable" in result.stderr and "mlflow server" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (prepared / "models/digits").exists()


@pytest.mark.slow
def test_training_is_deterministic_for_a_fixed_seed(prepared):
    run([FORGEML, "compose", "trainer.max_epochs=2", "-o", "det.yaml"], cwd=prepared)
    losses = []
    for _ in range(2):
        run([FORGEML, "train", "-p", "det.yaml"], cwd=prepared,
            env={"MLFLOW_TRACKING_URI": _store(prepared, "det.db")})
        record = json.loads((prepared / "models/digits/run.json").read_text())
        losses.append([h["val_loss"] for h in record["history"]])
    assert losses[0] == losses[1]


@pytest.mark.slow  # two DDP processes: ~20 s
def test_ddp_on_two_cpu_processes_logs_exactly_one_run(prepared):
    run([FORGEML, "compose", "trainer=ddp_cpu", "trainer.max_epochs=2", "-o",
         "ddp.yaml"], cwd=prepared)
    store = _store(prepared, "ddp.db")
    result = run([FORGEML, "train", "-p", "ddp.yaml"], cwd=prepared,
                 env={"MLFLOW_TRACKING_URI": store})
    assert "trained 2 epochs" in result.stdout
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("digits")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.params["trainer.strategy"] == "ddp"
    assert runs[0].data.params["trainer.devices"] == "2"
    record = json.loads((prepared / "models/digits/run.json").read_text())
    assert record["run_id"] == runs[0].info.run_id
    # Both ranks' samples are counted: one epoch covers the whole training split.
    card = json.loads((prepared / "data/prepared/digits/data_card.json").read_text())
    assert record["train_samples_per_second"] * record["train_seconds"] >= 2 * card["counts"][
        "train"] - 2
    assert (prepared / "models/digits/best.ckpt").is_file() and not _leftovers(prepared)


def test_training_clock_counts_batches_only(monkeypatch):
    """Throughput is samples over time in training batches, as a plain loop's timer around
    its batches: validation, checkpoint writing and logging between epochs are excluded, and
    a mid-epoch validation (the LM) pauses the clock until the next batch."""
    from forgeml.training import callbacks

    now = [0.0]
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: now[0])
    clock = callbacks.TrainingClock()

    def advance(seconds):
        now[0] += seconds

    clock.on_train_batch_start(None, None, None, 0)
    advance(2.0)  # batches
    clock.on_train_batch_start(None, None, None, 1)  # already running: no restart
    advance(1.0)
    clock.on_validation_start(None, None)
    advance(5.0)  # validation, then checkpoints written at validation end
    clock.on_train_epoch_end(None, None)
    advance(3.0)  # MLflow logging, next epoch's set-up
    clock.on_train_batch_start(None, None, None, 0)
    advance(1.5)
    clock.on_validation_start(None, None)  # mid-epoch validation
    advance(4.0)
    clock.on_train_batch_start(None, None, None, 7)
    advance(0.5)
    clock.on_train_end(None, None)
    advance(9.0)
    clock.on_train_end(None, None)
    assert clock.seconds == pytest.approx(5.0)
    restored = callbacks.TrainingClock()
    restored.load_state_dict(clock.state_dict())  # a resumed run continues its seconds
    assert restored.seconds == pytest.approx(5.0)
