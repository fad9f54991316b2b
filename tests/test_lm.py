"""The language-model pipeline: the real `dvc repro pipelines/lm/dvc.yaml` on a slice of the
Shakespeare corpus, the GPT's causality and seeded generation, tokenizers, metrics, bad input."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from conftest import AFTER_FIRST_CHECKPOINT, BIN, REPO, killed_at, make_project, run
from forgeml.data.text_corpus import TextCorpus, folder, shakespeare
from forgeml.data.tokenizer import (
    BPETokenizer,
    CharTokenizer,
    fit_tokenizer,
    load_tokenizer,
    tokenizer_from_json,
)
from forgeml.errors import ConfigError, DataError
from forgeml.lm_metrics import (
    bigram_window_nll,
    summarize_nll,
    target_positions,
    unigram_window_nll,
)
from forgeml.models.gpt import GPT
from forgeml.tasks import compose
from forgeml.tasks.lm.prepare import prepare, split_works
from forgeml.training.language_model import warmup_cosine

FORGEML = str(BIN / "forgeml")
LM_PARAMS = "pipelines/lm/params.yaml"
# A few seconds of training: a slice of every work and a small GPT.
TINY = ["experiment=lm_gpt", "data.source.max_chars_per_work=12000", "model.n_layer=2",
        "model.n_embd=64", "model.block_size=32", "trainer.max_steps=200",
        "trainer.val_check_interval=100", "train.warmup_steps=20", "train.batch_size=16",
        "train.val_batches=5", "evaluate.samples.max_new_tokens=40",
        "evaluate.bootstrap_samples=200", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def lm_project(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("lm"))
    run([FORGEML, "compose", *TINY, "-o", LM_PARAMS], cwd=project)
    result = run([str(BIN / "dvc"), "repro", "pipelines/lm/dvc.yaml"], cwd=project)
    (project / "repro-lm.log").write_text(result.stdout + result.stderr)
    return project


def _lm_run(project):
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lm")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return client, runs[0]


# --- the pipeline, end to end ---
def test_tiny_pipeline_beats_the_unigram_baseline(lm_project):
    test = json.loads((lm_project / "metrics/lm/test.json").read_text())
    assert test["loss"] < math.log(test["unigram_perplexity"]), test
    assert test["perplexity_ci_low"] < test["perplexity"] < test["perplexity_ci_high"]
    assert test["bits_per_char"] == pytest.approx(test["bits_per_token"])  # char tokens
    card = json.loads((lm_project / "data/prepared/lm/data_card.json").read_text())
    works = card["works"]
    assert not set(works["train"]) & (set(works["val"]) | set(works["test"]))
    assert works["test"] == ["julius_caesar", "much_ado_about_nothing", "tempest"]
    assert len(works["train"]) + len(works["val"]) + len(works["test"]) == 42
    tokens = np.memmap(lm_project / "data/prepared/lm/test.bin", dtype=np.uint16, mode="r")
    assert len(tokens) == card["counts"]["test"]


def test_report_has_verdict_samples_and_embedded_plots(lm_project):
    html = (lm_project / "reports/lm/report.html").read_text()
    for section in ("verdict", "plots", "samples", "data", "cost", "lineage"):
        assert f'id="{section}"' in html
    assert "bigram" in html and "perplexity" in html
    assert "dvc repro pipelines/lm/dvc.yaml" in html
    assert len(re.findall(r'src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}"', html)) == 2
    assert not re.search(r'(src|href)="(https?:)?//', html)
    evaluation = json.loads((lm_project / "eval/lm/evaluation.json").read_text())
    assert len(evaluation["samples"]) == 6  # 3 prompts x 2 temperatures
    assert all(len(s["text"]) == 40 for s in evaluation["samples"])


def test_mlflow_run_logs_tokens_per_second_curves_tokenizer_and_model(lm_project):
    client, run_ = _lm_run(lm_project)
    assert run_.info.status == "FINISHED"
    metrics = run_.data.metrics
    assert metrics["train_summary/train_tokens_per_second"] > 0
    assert metrics["test/perplexity"] > 1
    val_curve = client.get_metric_history(run_.info.run_id, "val/loss")
    assert [m.step for m in val_curve] == [99, 199]  # every val_check_interval steps
    assert client.get_metric_history(run_.info.run_id, "train/tokens_per_s")[-1].value > 0
    artifacts = {a.path for a in client.list_artifacts(run_.info.run_id, "config")}
    assert "config/tokenizer.json" in artifacts
    assert run_.data.params["model.n_layer"] == "2"
    assert run_.data.tags["forgeml.pipeline"] == "lm"


def test_generate_prints_seeded_text_from_the_logged_model(lm_project):
    _, run_ = _lm_run(lm_project)
    args = [FORGEML, "generate", "--run", run_.info.run_id, "--prompt", "To be", "-n", "30"]
    first = run(args, cwd=lm_project).stdout
    # Later calls read the local copy of the run's files; a damaged copy is fetched again.
    cached = lm_project / ".forgeml/runs" / run_.info.run_id
    weights = next(cached.glob("model/artifacts/network/*.safetensors"))
    assert (cached / "config/tokenizer.json").is_file()
    weights.write_bytes(weights.read_bytes()[:-8])
    again = run(args, cwd=lm_project).stdout
    other = run([*args, "--seed", "7"], cwd=lm_project).stdout
    assert first.startswith("To be") and len(first.rstrip("\n")) == len("To be") + 30
    assert first == again and first != other


def test_generate_without_a_champion_fails_clearly(lm_project):
    result = run([FORGEML, "generate", "--run", "champion", "--prompt", "x"], cwd=lm_project,
                 check=False)
    assert result.returncode == 2
    assert "No champion is registered for pipeline 'lm'" in result.stderr


def test_lm_pipeline_is_up_to_date_after_repro(lm_project):
    result = run([str(BIN / "dvc"), "status", "pipelines/lm/dvc.yaml"], cwd=lm_project)
    assert "up to date" in result.stdout


# --- the model ---
def test_changing_a_future_token_never_changes_earlier_logits():
    torch.manual_seed(0)
    model = GPT(vocab_size=50, block_size=16, n_layer=2, n_head=2,
              n_embd=32, dropout=0.0, bias=True).eval()
    idx = torch.randint(50, (2, 16))
    changed = idx.clone()
    changed[:, 9] = (changed[:, 9] + 1) % 50
    with torch.no_grad():
        before, after = model(idx), model(changed)
    assert torch.equal(before[:, :9], after[:, :9])
    assert not torch.allclose(before[:, 9:], after[:, 9:])


def test_weights_are_tied_and_long_input_is_refused():
    model = GPT(vocab_size=30, block_size=8, n_layer=1, n_head=2,
              n_embd=16, dropout=0.0, bias=True)
    assert model.wte.weight is model.lm_head.weight
    with pytest.raises(ValueError, match="longer than block_size"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_seeded_generation_is_deterministic():
    torch.manual_seed(0)
    model = GPT(vocab_size=40, block_size=8, n_layer=1, n_head=2,
              n_embd=16, dropout=0.0, bias=True).eval()
    start = torch.tensor([[1, 2, 3]])

    def sample(seed: int, **kw) -> torch.Tensor:
        return model.generate(start, 20, generator=torch.Generator().manual_seed(seed), **kw)

    assert torch.equal(sample(5), sample(5))
    assert not torch.equal(sample(5), sample(6))
    assert sample(5).shape == (1, 23)  # longer than block_size: the context window slides
    top1 = sample(5, top_k=1)
    assert torch.equal(top1, sample(6, top_k=1))  # top-1 sampling is greedy


def test_learning_rate_warms_up_then_decays_to_the_floor():
    factor = warmup_cosine(warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    assert factor(0) < factor(5) < factor(9) < 1
    assert factor(10) == pytest.approx(1.0)
    assert factor(60) == pytest.approx(0.55)
    assert factor(110) == pytest.approx(0.1) and factor(500) == pytest.approx(0.1)


# --- tokenizers ---
def test_bpe_round_trips_any_text():
    corpus = shakespeare(max_chars_per_work=5000)
    bpe = fit_tokenizer("bpe", list(corpus.works.values()), vocab_size=400)
    assert isinstance(bpe, BPETokenizer) and bpe.vocab_size <= 400
    for text in (corpus.works["hamlet"][:2000], "Naïve café — ✓ 日本\n\n  tabs\tand  spaces"):
        ids = bpe.encode(text)
        assert bpe.decode(ids) == text
    sample = corpus.works["hamlet"][:2000]
    assert len(bpe.encode(sample)) < 0.7 * len(sample)  # merges learned: fewer tokens than chars
    again = tokenizer_from_json(bpe.to_json())
    assert again.encode(sample) == bpe.encode(sample)


def test_bpe_prepare_writes_fewer_tokens_than_characters(tmp_path):
    cfg = compose([*TINY, "data.tokenizer.kind=bpe", "data.tokenizer.vocab_size=512",
                   "data.source.max_chars_per_work=4000"], config_dir=REPO / "conf")
    cfg.paths.prepared = str(tmp_path / "lm")
    card = prepare(cfg)
    assert card["tokenizer"] == {"kind": "bpe", "vocab_size": 512, "dtype": "uint16"}
    for split in ("train", "val", "test"):
        assert card["counts"][split] < 0.8 * card["chars"][split]
    tokenizer = load_tokenizer(tmp_path / "lm" / "tokenizer.json")
    tokens = np.fromfile(tmp_path / "lm" / "test.bin", dtype=np.uint16)
    assert len(tokenizer.decode(tokens.tolist())) == card["chars"]["test"]  # lossless
    # Bits per character from bits per token: divide by characters per token.
    chars_per_token = card["chars"]["test"] / card["counts"]["test"]
    summary = summarize_nll(np.array([2.0, 2.0]), chars_per_token)
    assert summary["bits_per_char"] == pytest.approx(2.0 / math.log(2) / chars_per_token)


def test_char_tokenizer_maps_unseen_characters_to_unknown():
    tok = CharTokenizer.fit("abc ")
    assert tok.vocab_size == 5
    assert tok.decode(tok.encode("a cab")) == "a cab"
    assert tok.encode("abz") == [tok.ids["a"], tok.ids["b"], 0]
    assert tokenizer_from_json(tok.to_json()).encode("cab") == tok.encode("cab")


# --- metrics ---
def test_count_baselines_on_a_known_sequence():
    train = np.array([0, 1] * 500)  # "ababab...": the next token is certain given the last
    test = np.array([0, 1] * 50)
    unigram = unigram_window_nll(train, test, block_size=8, vocab_size=2)
    assert unigram.mean() == pytest.approx(math.log(2), abs=1e-3)
    bigram = bigram_window_nll(train, test, block_size=8, vocab_size=2, smoothing=1e-6)
    assert bigram.mean() < 1e-4
    positions = target_positions(len(test), 8)
    assert positions.shape == (12, 8) and positions[0, 0] == 1 and positions.max() < len(test)


# --- bad input ---
def test_empty_corpus_is_refused(tmp_path):
    (tmp_path / "a.txt").write_text("")
    (tmp_path / "b.txt").write_text("   \n")
    with pytest.raises(DataError, match="holds no text"):
        split_works(folder(str(tmp_path)), ["a"], ["b"])
    with pytest.raises(DataError, match="holds no text"):
        split_works(folder(str(tmp_path), pattern="*.md"), [], [])  # no files at all


def test_split_names_must_exist_and_not_overlap():
    corpus = TextCorpus("t", "here", "none", {"a": "x" * 10, "b": "y" * 10, "c": "z" * 10})
    with pytest.raises(DataError, match="does not have: \\['hamlet'\\]"):
        split_works(corpus, ["hamlet"], ["c"])
    with pytest.raises(DataError, match="both"):
        split_works(corpus, ["b"], ["b"])
    assert split_works(corpus, ["b"], ["c"]) == {"train": ["a"], "val": ["b"], "test": ["c"]}


def test_unknown_tokenizer_is_a_config_error():
    with pytest.raises(ConfigError, match="data.tokenizer.kind 'wordpiece' is unknown"):
        compose(["experiment=lm_gpt", "data.tokenizer.kind=wordpiece"])


def test_block_size_longer_than_the_data_fails_clearly_via_the_cli(tmp_path):
    project = make_project(tmp_path / "project")
    texts = project / "texts"
    texts.mkdir()
    for name in ("one", "two", "three"):
        (texts / f"{name}.txt").write_text(f"The {name} short text.\n" * 3)
    overrides = [*TINY, "data.source._target_=forgeml.data.text_corpus.folder",
                 f"+data.source.path={texts}", "data.split.val_works=[two]",
                 "data.split.test_works=[three]", "model.block_size=256"]
    run([FORGEML, "compose", *overrides, "-o", LM_PARAMS], cwd=project)
    result = run([FORGEML, "prepare", "-p", LM_PARAMS], cwd=project, check=False)
    assert result.returncode == 2
    assert "not more than model.block_size (256)" in result.stderr
    assert not (project / "data/prepared/lm").exists()  # nothing half-written


def test_lm_params_file_is_the_composed_experiment():
    shipped = OmegaConf.load(REPO / LM_PARAMS)
    composed = compose(["experiment=lm_gpt"], config_dir=REPO / "conf")
    assert OmegaConf.to_container(shipped) == OmegaConf.to_container(composed)


# --- crash safety (last: it adds a run to the module's project) ---
@pytest.mark.long  # the digits, DDP and recommender kills cover resuming in CI: ~4 min
@pytest.mark.slow
def test_a_killed_lm_training_resumes_its_step_schedule_and_data_in_the_same_run(lm_project):
    """Step-based training killed right after its first checkpoint (step 100 of 200) continues
    the LR schedule and the stream of random windows: the result equals the uninterrupted one."""
    reference = json.loads((lm_project / "models/lm/run.json").read_text())
    train = [FORGEML, "train", "-p", LM_PARAMS]
    killed = run(train, cwd=lm_project, check=False, env=killed_at(AFTER_FIRST_CHECKPOINT))
    assert killed.returncode == -9
    resumed = run(train, cwd=lm_project)
    assert "resuming MLflow run" in resumed.stdout and "step 100" in resumed.stdout
    record = json.loads((lm_project / "models/lm/run.json").read_text())
    assert record["run_id"] in resumed.stdout and record["steps_trained"] == 200
    assert [(h["step"], round(h["val_loss"], 4)) for h in record["history"]] == \
        [(h["step"], round(h["val_loss"], 4)) for h in reference["history"]]
    client = MlflowClient(tracking_uri=f"sqlite:///{lm_project / 'mlflow.db'}")
    steps = [m.step for m in client.get_metric_history(record["run_id"], "val/loss")]
    assert len(steps) == len(set(steps))  # nothing logged twice
