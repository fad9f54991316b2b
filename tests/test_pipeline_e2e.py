"""The real pipeline (prepare -> train -> evaluate -> report) via `dvc repro`, as a user runs it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import BIN, run
from forgeml.tracking import TOP_LEVEL


def _client(project) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def _the_run(project):
    client = _client(project)
    experiment = client.get_experiment_by_name("digits")
    runs = client.search_runs([experiment.experiment_id], filter_string=TOP_LEVEL,
                              order_by=["attributes.start_time ASC"])
    return client, runs


def test_pipeline_metrics_are_well_above_chance(pipeline_project):
    test = json.loads((pipeline_project / "metrics/digits/test.json").read_text())
    assert test["acc"] > 0.85, test  # 10 classes: chance is 0.10
    assert test["acc_ci_low"] < test["acc"] < test["acc_ci_high"]
    assert 0 < test["baseline_acc"] <= 1
    train = json.loads((pipeline_project / "metrics/digits/train.json").read_text())
    assert train["epochs_trained"] == 5 and train["train_samples_per_second"] > 0
    card = json.loads((pipeline_project / "data/prepared/digits/data_card.json").read_text())
    assert sum(card["counts"].values()) + sum(card["removed"].values()) == card["raw_count"]
    assert card["licence"] and len(card["data_hash"]) == 64


def test_report_has_verdict_and_embedded_plots_and_works_offline(pipeline_project):
    html = (pipeline_project / "reports/digits/report.html").read_text()
    for section in ("verdict", "plots", "data", "cost", "lineage"):
        assert f'id="{section}"' in html
    assert "it is right" in html and "baseline" in html
    assert len(re.findall(r'src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}"', html)) == 5
    # Nothing to fetch: no external scripts, styles or images.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    markdown = (pipeline_project / "reports/digits/report.md").read_text()
    assert "## Verdict" in markdown and "figures/confusion_matrix.png" in markdown
    assert (pipeline_project / "reports/digits/figures/confusion_matrix.png").stat().st_size > 1000


def test_mlflow_run_holds_params_metrics_lineage_artifacts_and_model(pipeline_project):
    client, runs = _the_run(pipeline_project)
    assert len(runs) == 1
    run_ = runs[0]
    assert run_.info.status == "FINISHED"
    params = run_.data.params
    assert params["model._target_"] == "forgeml.models.cnn.CNN"
    assert params["trainer.max_epochs"] == "5" and params["data.name"] == "digits"
    assert {"test/acc", "test/f1_macro", "test/ece", "val/loss", "train/loss"} <= set(
        run_.data.metrics)
    assert len(client.get_metric_history(run_.info.run_id, "val/loss")) == 5
    tags = run_.data.tags
    head = run(["git", "rev-parse", "HEAD"], cwd=pipeline_project).stdout.strip()
    assert tags["forgeml.git_commit"] == head and tags["forgeml.git_dirty"] == "false"
    assert " cpu " in f" {tags['forgeml.environment']}"  # the kernel set, e.g. "cpu x86_64 AVX2"
    card = json.loads((pipeline_project / "data/prepared/digits/data_card.json").read_text())
    assert tags["forgeml.data_hash"] == card["data_hash"]
    assert len(tags["forgeml.config_hash"]) == 16
    artifacts = {a.path for a in client.list_artifacts(run_.info.run_id)}
    assert {"config", "evaluation", "report"} <= artifacts
    report_files = {a.path for a in client.list_artifacts(run_.info.run_id, "report")}
    assert "report/report.html" in report_files

    mlflow.set_tracking_uri(f"sqlite:///{pipeline_project / 'mlflow.db'}")
    model_info = mlflow.models.get_model_info(f"runs:/{run_.info.run_id}/model")
    assert model_info.signature is not None
    # The MLflow model serves class probabilities and is stored as code + safetensors + JSON:
    # nothing in it is a pickle.
    stored = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_.info.run_id}/model"))
    assert not [p for p in stored.rglob("*") if p.suffix in (".pkl", ".pth", ".pt")]
    assert (stored / "artifacts/network/weights.safetensors").is_file()
    model = mlflow.pyfunc.load_model(f"runs:/{run_.info.run_id}/model")
    images = torch.load(pipeline_project / "data/prepared/digits/test.pt")
    probs = model.predict(images["images"][:200].numpy())
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == images["labels"][:200].numpy()).mean() > 0.85


def test_the_run_carries_what_the_mlflow_ui_shows(pipeline_project):
    """Experiment kind and description, dataset inputs per split, the verdict as description,
    lists as short params, system metrics while training."""
    client, runs = _the_run(pipeline_project)
    run_ = runs[0]
    experiment = client.get_experiment(run_.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "pipeline 'digits'" in experiment.tags["mlflow.note.content"]
    card = json.loads((pipeline_project / "data/prepared/digits/data_card.json").read_text())
    inputs = {i.dataset.name: i for i in run_.inputs.dataset_inputs}
    assert set(inputs) == {"digits-train", "digits-val", "digits-test"}
    for split, context in [("train", "training"), ("val", "validation"), ("test", "test")]:
        dataset = inputs[f"digits-{split}"]
        assert {t.key: t.value for t in dataset.tags}["mlflow.data.context"] == context
        assert card["data_hash"].startswith(dataset.dataset.digest)
        assert json.loads(dataset.dataset.profile)["num_rows"] == card["counts"][split]
        columns = json.loads(dataset.dataset.schema)["mlflow_colspec"]
        assert [c["name"] for c in columns] == ["image", "label"]
    # Each compressed variant is a child of the run, with its accuracy and latency.
    children = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{run_.info.run_id}'")
    compression = json.loads((pipeline_project / "metrics/digits/compression.json").read_text())
    assert sorted(c.data.tags["forgeml.child"] for c in children) == sorted(
        f"compress/{row['key']}" for row in compression["detail"]["rows"])
    for child in children:
        key = child.data.tags["forgeml.child"].split("/")[1]
        assert child.data.metrics["test/acc"] == compression[f"{key}_acc"]
        assert child.data.tags["forgeml.data_hash"] == card["data_hash"]
    report = (pipeline_project / "reports/digits/report.md").read_text()
    description = run_.data.tags["mlflow.note.content"]
    assert description.split("\n")[0].split(". ")[0] in report
    assert run_.data.params["data.class_names"] == "0, 1, 2, 3, 4, 5, 6, 7, 8, 9"
    assert any(k.startswith("system/cpu_utilization") for k in run_.data.metrics)
    # Per-epoch curves are indexed by epoch (1..5), not by optimizer step.
    assert [m.step for m in client.get_metric_history(run_.info.run_id, "val/loss")] == [
        1, 2, 3, 4, 5]


def test_second_repro_reruns_nothing(pipeline_project):
    result = run([str(BIN / "dvc"), "repro"], cwd=pipeline_project)
    assert "Data and pipelines are up to date" in result.stdout
    assert "Running stage" not in result.stdout


def _test_acc(row: dict) -> float | None:
    """The test accuracy `dvc exp show --json` reports for one commit or experiment."""
    metrics = (row.get("data") or {}).get("metrics") or {}
    value = (metrics.get("metrics/digits/test.json") or {}).get("data", {}).get("acc")
    return value if isinstance(value, float) else None


@pytest.mark.slow
def test_dvc_exp_show_compares_the_commit_with_two_experiments(pipeline_project):
    dvc = str(BIN / "dvc")
    # As a user does after a run: commit it (metrics/ and plots/ are tracked by git).
    run(["git", "add", "dvc.lock", "metrics", "plots"], cwd=pipeline_project)
    run(["git", "-c", "user.email=t@forgeml.test", "-c", "user.name=test", "commit", "-qm",
         "baseline run"], cwd=pipeline_project)
    first = run([dvc, "exp", "run", "-S", "trainer.max_epochs=3"], cwd=pipeline_project).stdout
    assert "Stage 'prepare' didn't change, skipping" in first
    assert "Running stage 'train'" in first
    run([dvc, "exp", "run", "-S", "model=mlp", "-S", "trainer.max_epochs=3"],
        cwd=pipeline_project)

    show = json.loads(run([dvc, "exp", "show", "--json"], cwd=pipeline_project).stdout)
    commit = next(row for row in show if row.get("rev") != "workspace")
    experiments = [exp_rev for exp in commit.get("experiments") or []
                   for exp_rev in exp.get("revs") or []]
    assert _test_acc(commit) is not None and _test_acc(commit) > 0.5
    assert len(experiments) == 2
    assert all(_test_acc(e) is not None and _test_acc(e) > 0.5 for e in experiments)
    diff = json.loads(run([dvc, "metrics", "diff", "--json", "HEAD",
                           experiments[0]["name"]], cwd=pipeline_project).stdout)
    assert isinstance(diff["metrics/digits/test.json"]["acc"]["new"], float)

    client, runs = _the_run(pipeline_project)
    assert len(runs) == 3
    assert {r.data.params["trainer.max_epochs"] for r in runs[1:]} == {"3"}
    assert all(r.data.tags.get("dvc.exp_name") for r in runs[1:])
    # Experiments change params.yaml, dvc.lock and metrics only: not "uncommitted changes".
    assert all(r.data.tags["forgeml.git_dirty"] == "false" for r in runs[1:])
    # The last run's report compares itself with the one before, on the same test images.
    markdown = (pipeline_project / "reports/digits/report.md").read_text()
    assert "Against the previous run" in markdown
    assert "Earlier runs of this pipeline" in markdown


def test_learning_curve_is_a_dvc_plot(pipeline_project):
    curve = np.genfromtxt(pipeline_project / "plots/digits/learning_curve.csv", delimiter=",",
                          names=True)
    assert curve.dtype.names == ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")
    result = run([str(BIN / "dvc"), "plots", "show", "--json"], cwd=pipeline_project)
    assert "learning_curve.csv" in result.stdout or "learning curves" in result.stdout
