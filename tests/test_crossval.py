"""k-fold cross-validation (`forgeml cv`, the cv stage): the folds themselves, the real stage on
the digits and sentiment pipelines (one MLflow child run per fold, cv.json, the report's
section, a rerun reusing finished folds), and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from conftest import BIN, make_project, run
from forgeml.crossval.folds import complete_groups, make_folds
from forgeml.errors import ConfigError

FORGEML = str(BIN / "forgeml")
DVC = str(BIN / "dvc")
SENTIMENT = "pipelines/sentiment/params.yaml"


def _labels(counts: list[int]) -> np.ndarray:
    return np.concatenate([np.full(n, k) for k, n in enumerate(counts)])


def test_folds_partition_the_examples_in_equal_stratified_parts():
    labels = _labels([120, 60, 33])
    folds = make_folds(labels, 5, seed=0)
    everything = np.concatenate(folds)
    assert sorted(everything) == list(range(len(labels)))  # each example held out exactly once
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 3  # one per class at most
    for held in folds:  # each class in its overall share, within one example
        for k, n in enumerate([120, 60, 33]):
            assert abs((labels[held] == k).sum() - n / 5) <= 1
    assert [list(f) for f in make_folds(labels, 5, seed=0)] == [list(f) for f in folds]
    assert [list(f) for f in make_folds(labels, 5, seed=1)] != [list(f) for f in folds]


def test_grouped_folds_never_split_a_group_and_stay_stratified():
    rng = np.random.default_rng(0)
    groups = np.array([f"movie{g}" for g in rng.integers(0, 60, size=600)], dtype=object)
    groups[::50] = None  # examples without a group: each its own
    labels = rng.integers(0, 2, size=600)
    folds = make_folds(labels, 4, seed=0, groups=groups)
    assert sorted(np.concatenate(folds)) == list(range(600))
    named = complete_groups(groups)
    where = {}
    for i, held in enumerate(folds):
        for g in set(named[held]):
            assert where.setdefault(g, i) == i, f"group {g} is in folds {where[g]} and {i}"
    for held in folds:
        assert abs(labels[held].mean() - labels.mean()) < 0.1


@pytest.mark.parametrize(("k", "message"), [(1, "at least 2 folds"),
                                            (34, "rarest class")])
def test_impossible_fold_counts_are_refused(k, message):
    with pytest.raises(ConfigError, match=message):
        make_folds(_labels([120, 60, 33]), k, seed=0)


def test_more_folds_than_groups_is_refused():
    with pytest.raises(ConfigError, match="3 groups"):
        make_folds(_labels([30, 30]), 4, seed=0,
                   groups=np.array(["a", "b", "c"] * 20, dtype=object))


def _cv_runs(project: Path, pipeline: str) -> tuple[list, list]:
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"{pipeline}-cv")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def _check_cv_record(project: Path, k: int) -> dict:
    record = json.loads((project / "metrics/digits/cv.json").read_text())
    assert record["folds"] == k and record["grouped"] is False
    assert sum(record["held_out"].values()) == record["examples"]
    model = record["models"]["model"]
    scores = list(model["fold_acc"].values())
    assert len(scores) == k and all(0.5 < s <= 1 for s in scores)
    assert model["acc_mean"] == pytest.approx(np.mean(scores))
    assert model["acc_std"] == pytest.approx(np.std(scores, ddof=1))
    [parent], children = _cv_runs(project, "digits")
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["cv/acc_mean"] == pytest.approx(model["acc_mean"])
    assert sorted(c.data.tags["forgeml.fold"] for c in children) == [str(i + 1) for i in range(k)]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {c.info.status for c in children} == {"FINISHED"}
    # Each child's last validation accuracy is its fold's score.
    assert sorted(c.data.metrics["val/acc"] for c in children) == pytest.approx(sorted(scores))
    return record


def test_the_digits_cv_stage_trains_one_child_run_per_fold(tmp_path):
    project = make_project(tmp_path / "project")
    run([FORGEML, "compose", "cv.folds=2", "cv.max_epochs=2"], cwd=project)
    run([DVC, "repro", "cv"], cwd=project)
    record = _check_cv_record(project, 2)
    assert {r.data.metrics["train_summary/epochs_trained"]
            for r in _cv_runs(project, "digits")[1]} == {2}
    # A rerun of the same folds reuses the finished ones: no new run, the same numbers.
    again = run([DVC, "repro", "-f", "-s", "cv"], cwd=project)
    assert json.loads((project / "metrics/digits/cv.json").read_text()) == record
    assert len(_cv_runs(project, "digits")[1]) == 2, again.stdout


@pytest.mark.long  # k-fold pipelines: ~3 min of CI time
@pytest.mark.slow  # the whole pipeline: ~50 s
def test_the_report_shows_the_spread_over_folds_and_dvc_metrics_the_numbers(tmp_path):
    project = make_project(tmp_path / "project")
    run([FORGEML, "compose", "cv.folds=3"], cwd=project)
    run([DVC, "repro"], cwd=project)
    model = _check_cv_record(project, 3)["models"]["model"]
    report = (project / "reports/digits/report.md").read_text()
    section = report.split("## Cross-validation", 1)[1].split("## Data card", 1)[0]
    assert "3-fold splits" in section and "| Fold 1 | Fold 2 | Fold 3 |" in section
    assert f"{model['acc_mean']:.2%}" in section
    assert 'id="cross-validation"' in (project / "reports/digits/report.html").read_text()
    status = run([DVC, "status", "dvc.yaml"], cwd=project).stdout
    assert status.strip().endswith("up to date.")
    shown = run([DVC, "metrics", "show", "--json"], cwd=project).stdout
    cv = json.loads(shown)[""]["data"]["metrics/digits/cv.json"]["data"]
    assert cv["models"]["model"]["acc_mean"] == pytest.approx(model["acc_mean"])


@pytest.mark.long  # k-fold pipelines: ~3 min of CI time
@pytest.mark.slow  # the sentiment prepare stage and 3 folds: ~20 s
def test_the_sentiment_cv_stage_groups_reviews_of_one_movie_in_one_fold(tmp_path, monkeypatch):
    from forgeml.tasks import load_params
    from forgeml.tasks.sentiment.cv import _groups, _rows

    project = make_project(tmp_path / "project")
    run([FORGEML, "compose", "experiment=sentiment_minilm", "data.source.max_rows=400",
         "model=tfidf_lr", "cv.folds=3", "cv.models=[tfidf_lr]", "-o", SENTIMENT], cwd=project)
    run([FORGEML, "prepare", "-p", SENTIMENT], cwd=project)
    run([FORGEML, "cv", "-p", SENTIMENT], cwd=project)
    record = json.loads((project / "metrics/sentiment/cv.json").read_text())
    assert record["folds"] == 3 and record["grouped"] is True
    assert set(record["models"]) == {"tfidf_lr"}
    # Every movie's reviews are held out in one fold only (the folds as the stage wrote them).
    cfg = load_params(project / SENTIMENT)
    monkeypatch.chdir(project)
    pool = _rows(cfg, "train") + _rows(cfg, "val")
    group_of = dict(zip([r["id"] for r in pool], _groups(cfg, pool), strict=True))
    seen = {}
    for val in sorted((project / ".forgeml/cv/sentiment").glob("*/fold-*/prepared/val.jsonl")):
        fold = val.parent.parent.name
        for line in val.read_text().splitlines():
            group = group_of[json.loads(line)["id"]]
            assert seen.setdefault(group, fold) == fold
    assert len(set(seen.values())) == 3
    parents, children = _cv_runs(project, "sentiment")
    assert len(parents) == 1 and len(children) == 3


def test_bad_cv_settings_stop_before_anything_is_written(tmp_path):
    project = make_project(tmp_path / "project")
    params = (project / "params.yaml").read_text()
    refused = run([FORGEML, "compose", "cv.folds=1"], cwd=project, check=False)
    assert refused.returncode == 2 and "cv.folds=1: k-fold needs at least 2 folds" in \
        refused.stderr
    assert (project / "params.yaml").read_text() == params
    run([FORGEML, "compose", "cv.folds=3", "cv.models=[textcnn]"], cwd=project)
    result = run([FORGEML, "cv"], cwd=project, check=False)
    assert result.returncode == 2, result.stderr
    assert "cv.models ['textcnn']" in result.stderr and "Traceback" not in result.stderr
    assert not (project / "metrics/digits/cv.json").exists()
