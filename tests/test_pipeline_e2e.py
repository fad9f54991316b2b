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


def _client(project) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def _the_run(project):
    client = _client(project)
    experiment = client.get_experiment_by_name("digits")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
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
    assert len(re.findall(r'src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}"', html)) == 4
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
    assert tags["forgeml.git_commit"] == head and tags["forgeml.git_dirty"] in ("true", "false")
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


def test_second_repro_reruns_nothing(pipeline_project):
    result = run([str(BIN / "dvc"), "repro"], cwd=pipeline_project)
    assert "Data and pipelines are up to date" in result.stdout
    assert "Running stage" not in result.stdout


@pytest.mark.parametrize("override", ["trainer.max_epochs=3"])
def test_dvc_exp_run_reruns_only_affected_stages_and_is_tracked(pipeline_project, override):
    result = run([str(BIN / "dvc"), "exp", "run", "-S", override], cwd=pipeline_project)
    assert "Stage 'prepare' didn't change, skipping" in result.stdout
    assert "Running stage 'train'" in result.stdout
    show = json.loads(run([str(BIN / "dvc"), "exp", "show", "--json"],
                          cwd=pipeline_project).stdout)
    text = json.dumps(show)
    assert '"max_epochs": 3' in text and '"acc":' in text

    client, runs = _the_run(pipeline_project)
    assert len(runs) == 2
    newest = runs[-1]
    assert newest.data.params["trainer.max_epochs"] == "3"
    assert newest.data.tags.get("dvc.exp_name")
    # The second run's report compares itself with the first, on the same test images.
    markdown = (pipeline_project / "reports/digits/report.md").read_text()
    assert "Against the previous run" in markdown
    assert "Earlier runs of this pipeline" in markdown


def test_learning_curve_is_a_dvc_plot(pipeline_project):
    curve = np.genfromtxt(pipeline_project / "plots/digits/learning_curve.csv", delimiter=",",
                          names=True)
    assert curve.dtype.names == ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")
    result = run([str(BIN / "dvc"), "plots", "show", "--json"], cwd=pipeline_project)
    assert "learning_curve.csv" in result.stdout or "learning curves" in result.stdout
