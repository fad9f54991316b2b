"""The recommender pipeline: ranking metrics on hand-made rankings, leak-free splits, negative
sampling, bad input, and the real `dvc repro pipelines/recsys/dvc.yaml` end to end."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from conftest import AFTER_FIRST_CHECKPOINT, BIN, killed_at, make_project, run
from forgeml.data.interactions import TEST, TRAIN, VAL, draw_negatives, load_interactions
from forgeml.data.movielens import movielens100k
from forgeml.errors import DataError
from forgeml.ranking_metrics import hit_rate, ndcg, rank_of_target
from forgeml.tasks import compose
from forgeml.tasks.recsys.prepare import leave_last_out, parse_cutoff, prepare, time_cutoff

FORGEML = str(BIN / "forgeml")
PARAMS = "pipelines/recsys/params.yaml"
TINY = ["experiment=recsys_neumf", "trainer.max_epochs=2", "model.factors=16",
        "model.layers=[32,16,8]", "train.batch_size=1024", "evaluate.bootstrap_samples=200",
        "trainer.enable_progress_bar=false"]


# --- metrics on hand-made rankings ---
def test_hit_rate_and_ndcg_have_exact_known_values():
    scores = np.array([
        [0.9, 0.1, 0.2, 0.3],  # target first: rank 0
        [0.5, 0.9, 0.1, 0.2],  # one item above: rank 1
        [0.1, 0.9, 0.8, 0.7],  # three above: rank 3
    ])
    ranks = rank_of_target(scores)
    assert ranks.tolist() == [0, 1, 3]
    assert hit_rate(ranks, 1).tolist() == [1, 0, 0]
    assert hit_rate(ranks, 2).tolist() == [1, 1, 0]
    assert ndcg(ranks, 2) == pytest.approx([1.0, 1 / math.log2(3), 0.0])
    assert ndcg(ranks, 4)[2] == pytest.approx(1 / math.log2(5))


def test_ties_are_broken_at_random_not_in_the_targets_favour():
    constant = np.zeros((4000, 100))  # a scorer that cannot tell items apart
    ranks = rank_of_target(constant, np.random.default_rng(0))
    assert hit_rate(ranks, 10).mean() == pytest.approx(0.10, abs=0.015)
    assert rank_of_target(constant).max() == 0  # without a generator: ties favour the target


# --- splits and negatives ---
def test_leave_last_out_holds_out_each_users_latest_interactions():
    users = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2])
    stamps = np.array([5, 1, 9, 3, 2, 8, 4, 1, 2])
    split = leave_last_out(users, stamps)
    assert split.tolist() == [VAL, TRAIN, TEST, TRAIN, TRAIN, TEST, VAL, TRAIN, TRAIN]


def test_random_validation_rows_come_before_each_users_test_row():
    rng = np.random.default_rng(1)
    users = np.repeat(np.arange(50), 8)
    stamps = rng.integers(0, 1000, size=len(users))
    split = leave_last_out(users, stamps, val="random", seed=3)
    for user in range(50):
        mine = users == user
        assert (split[mine] == TEST).sum() == 1 and (split[mine] == VAL).sum() == 1
        assert stamps[mine][split[mine] == VAL][0] <= stamps[mine][split[mine] == TEST][0]
    assert not np.array_equal(split, leave_last_out(users, stamps, val="last"))


def test_time_cutoff_trains_before_and_tests_after():
    users = np.array([0, 0, 0, 1, 1, 2, 0, 1, 3])
    items = np.array([0, 1, 2, 0, 1, 2, 3, 2, 0])
    stamps = np.array([1, 2, 3, 1, 2, 3, 10, 11, 12])
    split, removed = time_cutoff(users, items, stamps, cutoff=10, test_days=None)
    assert (stamps[split == TEST] >= 10).all() and (stamps[np.isin(split, (TRAIN, VAL))] < 10).all()
    assert removed["test_from_users_unseen_in_train"] == 1  # user 3 appears only after T
    assert removed["test_with_items_unseen_in_train"] == 1  # item 3 appears only after T
    with pytest.raises(DataError, match="test split after the cutoff .* is empty"):
        time_cutoff(users, items, stamps, cutoff=100, test_days=None)
    assert parse_cutoff("1970-01-02") == 86400


def test_drawn_negatives_are_never_a_users_positive():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(20), 30)
    items = rng.integers(0, 40, size=len(users))
    keys = np.unique(users * 40 + items)
    negatives = draw_negatives(users, keys, 40, per_positive=4, rng=rng)
    assert not np.isin(np.repeat(users, 4) * 40 + negatives, keys).any()


@pytest.fixture(scope="module")
def prepared_movielens(tmp_path_factory):
    cfg = compose(TINY)
    cfg.paths.prepared = str(tmp_path_factory.mktemp("prepared") / "recsys")
    card = prepare(cfg)
    return card, load_interactions(cfg.paths.prepared)


def test_movielens_split_has_no_leak_and_frozen_negatives_are_true_negatives(prepared_movielens):
    card, data = prepared_movielens
    assert card["users"] == 943 and card["items"] == 1682 and card["raw_count"] == 100_000
    assert "no redistribution" in card["licence"]
    in_train = data.split == TRAIN
    train = set(zip(data.user[in_train].tolist(), data.item[in_train].tolist(), strict=True))
    users, candidates = data.candidates(TEST)
    assert len(users) == card["counts"]["test"] == 943
    assert not any((u, i) in train for u, i in zip(users.tolist(), candidates[:, 0].tolist(),
                                                    strict=True))
    last_train = {}
    for u, t in zip(data.user[data.split == TRAIN], data.timestamp[data.split == TRAIN],
                    strict=True):
        last_train[u] = max(t, last_train.get(u, t))
    test_rows = data.rows(TEST)
    assert all(data.timestamp[r] >= last_train[data.user[r]] for r in test_rows)
    positives = data.seen((TRAIN, VAL, TEST))
    for split in (VAL, TEST):
        users, candidates = data.candidates(split)
        assert candidates.shape == (len(users), 100)
        for user, row in zip(users.tolist(), candidates[:, 1:], strict=True):
            assert not positives[user] & set(row.tolist())
            assert len(set(row.tolist())) == 99


def test_implicit_threshold_keeps_only_high_ratings(tmp_path):
    cfg = compose([*TINY, "data.implicit.min_rating=4"])
    cfg.paths.prepared = str(tmp_path / "recsys")
    card = prepare(cfg)
    raw = movielens100k()
    assert sum(card["counts"].values()) == int((raw.ratings >= 4).sum())
    assert card["removed"]["rating_below_4"] == int((raw.ratings < 4).sum())


def test_an_empty_test_split_after_the_cutoff_is_refused_cleanly(tmp_path):
    project = make_project(tmp_path / "project")
    run([FORGEML, "compose", *TINY, "data.split.protocol=time_cutoff",
         "data.split.cutoff=2001-01-01", "-o", PARAMS], cwd=project)
    result = run([FORGEML, "prepare", "-p", PARAMS], cwd=project, check=False)
    assert result.returncode == 2
    assert "test split after the cutoff 2001-01-01 is empty" in result.stderr
    assert not (project / "data/prepared/recsys").exists()


# --- the pipeline, end to end ---
@pytest.fixture(scope="module")
def recsys_project(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("recsys"))
    run([FORGEML, "compose", *TINY, "-o", PARAMS], cwd=project)
    result = run([str(BIN / "dvc"), "repro", "pipelines/recsys/dvc.yaml"], cwd=project)
    (project / "repro-recsys.log").write_text(result.stdout + result.stderr)
    return project


def _run_id(project) -> str:
    return json.loads((project / "models/recsys/run.json").read_text())["run_id"]


def test_tiny_run_beats_popularity_and_reports_it(recsys_project):
    test = json.loads((recsys_project / "metrics/recsys/test.json").read_text())
    assert test["hr_at_10"] > test["popularity_hr_at_10"] + 0.05, test
    assert test["hr_at_10_ci_low"] < test["hr_at_10"] < test["hr_at_10_ci_high"]
    assert 0 < test["full_hr_at_10"] < test["hr_at_10"]  # full ranking is harder
    evaluation = json.loads((recsys_project / "eval/recsys/evaluation.json").read_text())
    assert sum(s["users"] for s in evaluation["slices"]) == 943
    html = (recsys_project / "reports/recsys/report.html").read_text()
    for section in ("verdict", "plots", "examples", "data", "cost", "lineage"):
        assert f'id="{section}"' in html
    assert "Recommending the most popular items" in html and "no redistribution" in html
    client = MlflowClient(tracking_uri=f"sqlite:///{recsys_project / 'mlflow.db'}")
    metrics = client.get_run(_run_id(recsys_project)).data.metrics
    assert metrics["test/hr_at_10"] == pytest.approx(test["hr_at_10"])
    assert len(client.get_metric_history(_run_id(recsys_project), "val/ndcg_at_10")) == 2


def test_recommend_prints_unseen_top_k_from_the_logged_model(recsys_project):
    out = run([FORGEML, "recommend", "--run", _run_id(recsys_project), "--user", "1", "-k", "5"],
              cwd=recsys_project).stdout.strip().splitlines()
    assert [line.split()[0] for line in out] == ["1", "2", "3", "4", "5"]
    catalog = json.loads((recsys_project / "data/prepared/recsys/catalog.json").read_text())
    data = load_interactions(recsys_project / "data/prepared/recsys")
    user = catalog["user_ids"].index("1")
    seen_titles = {catalog["titles"][i] for i in data.seen((TRAIN, VAL))[user]}
    shown = [line.split("  ")[1] for line in out]
    assert not seen_titles & set(shown)


def test_recommend_for_all_users_writes_a_file(recsys_project, tmp_path):
    target = tmp_path / "recs.csv"
    run([FORGEML, "recommend", "--run", _run_id(recsys_project), "--all", "-k", "3", "-o",
         str(target)], cwd=recsys_project)
    rows = list(csv.DictReader(target.open()))
    assert len(rows) == 943 * 3 and {r["rank"] for r in rows} == {"1", "2", "3"}


def test_recommend_for_an_unknown_user_fails_clearly(recsys_project):
    result = run([FORGEML, "recommend", "--run", _run_id(recsys_project), "--user", "99999"],
                 cwd=recsys_project, check=False)
    assert result.returncode == 2 and "Unknown user id '99999'" in result.stderr


@pytest.mark.long  # recommender runs: ~4 min of CI time
@pytest.mark.slow  # export + three CLI runs: ~25 s
def test_the_exported_recommender_serves_the_same_top_k_as_recommend(recsys_project, tmp_path):
    """Through ONNX (all-item scores, seen items masked without torch) the batch prediction
    lists what `forgeml recommend` lists from the PyTorch model."""
    run([FORGEML, "export", "--run", _run_id(recsys_project), "--pipeline", "recsys"],
        cwd=recsys_project)
    source = tmp_path / "users.csv"
    source.write_text("user\n1\n943\n")
    target = tmp_path / "recs.jsonl"
    run([FORGEML, "predict", "--pipeline", "recsys", "--run", _run_id(recsys_project), "-k",
         "5", "-i", str(source), "-o", str(target)], cwd=recsys_project)
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(rows) == 10
    from forgeml.tasks.recsys.recommend import load_network_recommender

    pytorch = load_network_recommender(f"sqlite:///{recsys_project / 'mlflow.db'}",
                                       _run_id(recsys_project))
    for user in ("1", "943"):
        expected = [r["item_id"] for r in pytorch.for_user(user, 5)]
        assert [r["item_id"] for r in rows if r["user_id"] == user] == expected
    # `forgeml recommend` now answers from the exported model too, with the same items.
    out = run([FORGEML, "recommend", "--run", _run_id(recsys_project), "--user", "1", "-k", "5"],
              cwd=recsys_project).stdout
    assert [line.split("(item ")[1].split(",")[0] for line in out.strip().splitlines()] == \
        [r["item_id"] for r in rows if r["user_id"] == "1"]
    source.write_text("user\n1\n99999\n")
    result = run([FORGEML, "predict", "--pipeline", "recsys", "--run", _run_id(recsys_project),
                  "-i", str(source), "-o", str(target)], cwd=recsys_project, check=False)
    assert result.returncode == 2 and "Unknown user id '99999'" in result.stderr
    assert len(target.read_text().splitlines()) == 10  # the earlier output is untouched


# --- crash safety (last: it adds a run to the module's project) ---
@pytest.mark.long  # recommender runs: ~4 min of CI time
@pytest.mark.slow
def test_a_killed_recommender_training_resumes_with_the_next_epochs_negatives(recsys_project):
    """Killed right after epoch 1's checkpoint, the rerun continues the same MLflow run and draws
    epoch 2's negatives (not epoch 1's again): the result equals the uninterrupted run's."""
    reference = json.loads((recsys_project / "models/recsys/run.json").read_text())
    train = [FORGEML, "train", "-p", PARAMS]
    killed = run(train, cwd=recsys_project, check=False, env=killed_at(AFTER_FIRST_CHECKPOINT))
    assert killed.returncode == -9
    resumed = run(train, cwd=recsys_project)
    assert "resuming MLflow run" in resumed.stdout
    record = json.loads((recsys_project / "models/recsys/run.json").read_text())
    assert record["run_id"] in resumed.stdout and record["epochs_trained"] == 2
    assert [round(h["train_loss"], 5) for h in record["history"]] == \
        [round(h["train_loss"], 5) for h in reference["history"]]
    assert record["best_val_ndcg"] == pytest.approx(reference["best_val_ndcg"], abs=1e-6)
