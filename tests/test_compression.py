"""Compression pieces on their own: structured pruning really shrinks a network and keeps it
loadable from the registry; the distillation loss is the soft-target KL scaled by T^2 plus the
label loss; latency figures are ordered."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from forgeml.compression.distillation import distillation_loss, fit, logits_of
from forgeml.compression.latency import latency
from forgeml.compression.pruning import prune
from forgeml.models.cnn import CNN
from forgeml.models.mlp import MLP
from forgeml.models.registry import instantiate_network
from forgeml.saved_network import load_network, save_network


@pytest.mark.parametrize("network", [
    lambda: instantiate_network(OmegaConf.create({
        "_target_": "forgeml.models.cnn.CNN", "image_shape": [1, 8, 8], "num_classes": 10,
        "channels": 16, "hidden": 32})),
    lambda: instantiate_network(OmegaConf.create({
        "_target_": "forgeml.models.mlp.MLP", "image_shape": [1, 8, 8], "num_classes": 10,
        "hidden": 40})),
])
def test_pruning_removes_units_and_the_result_saves_and_loads(network, tmp_path):
    model = network().eval()
    example = torch.rand(4, 1, 8, 8)
    pruned = prune(model, example, 0.5)
    params = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in pruned.parameters()) < params * 0.6
    assert pruned(example).shape == (4, 10)
    if isinstance(pruned, CNN):
        assert pruned.spec["channels"] == 8 and pruned.spec["hidden"] == 16
    else:
        assert isinstance(pruned, MLP) and pruned.spec["hidden"] == 20
    reloaded = load_network(save_network(pruned, tmp_path / "pruned"))
    assert torch.equal(reloaded(example), pruned(example))
    # The kept units are the largest by L1 norm, so the pruned net still tracks the original.
    assert F.cosine_similarity(pruned(example).flatten(), model(example).flatten(), 0) > 0.5


def test_pruning_the_transformer_drops_whole_heads_and_units_and_reloads(tmp_path):
    from forgeml.models.minilm_classifier import MiniLMClassifier

    model = MiniLMClassifier(max_length=16).eval()
    ids = torch.randint(1000, 2000, (3, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, 8:] = 0
    pruned = prune(model, (ids[:2], mask[:2]), 0.5).eval()
    layer = pruned.encoder.encoder.layer[0]
    # Six of twelve 32-wide heads and half the 1,536 feed-forward units; the residual width
    # (embeddings, LayerNorms) and the classes stay.
    assert pruned.spec["attention_heads"] == 6 and layer.attention.self.query.out_features == 192
    assert layer.intermediate.dense.out_features == 768
    assert pruned.encoder.embeddings.word_embeddings.embedding_dim == 384
    assert pruned(ids, mask).shape == (3, 2)
    reloaded = load_network(save_network(pruned, tmp_path / "pruned")).eval()
    assert torch.equal(reloaded(ids, mask), pruned(ids, mask))
    encoder_params = sum(p.numel() for p in pruned.encoder.encoder.parameters())
    assert encoder_params < 0.55 * sum(p.numel() for p in model.encoder.encoder.parameters())


def test_distillation_loss_is_zero_soft_loss_when_student_matches_teacher():
    logits = torch.randn(8, 5)
    labels = logits.argmax(1)
    soft_only = distillation_loss(logits, logits, labels, temperature=4.0, alpha=1.0)
    assert soft_only.item() == pytest.approx(0, abs=1e-6)
    hard_only = distillation_loss(logits, torch.randn(8, 5), labels, 4.0, alpha=0.0)
    assert hard_only.item() == pytest.approx(F.cross_entropy(logits, labels).item())
    student, teacher = torch.zeros(8, 5), torch.randn(8, 5)
    kl = F.kl_div(F.log_softmax(student / 2, -1), F.softmax(teacher / 2, -1),
                  reduction="batchmean")
    assert distillation_loss(student, teacher, labels, 2.0, 1.0).item() == \
        pytest.approx(4 * kl.item(), rel=1e-5)


def test_a_distilled_student_learns_the_teachers_function():
    torch.manual_seed(0)
    x = torch.randn(512, 6)
    teacher = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    labels = logits_of(teacher, (x,)).argmax(1)
    student = torch.nn.Linear(6, 3)
    before = (logits_of(student, (x,)).argmax(1) == labels).float().mean()
    fit(student, (x,), labels, epochs=30, batch_size=64, lr=0.05, seed=0,
        teacher_logits=logits_of(teacher, (x,)), temperature=2.0, alpha=0.9)
    after = (logits_of(student, (x,)).argmax(1) == labels).float().mean()
    assert after > max(before, 0.8)


def test_latency_figures_are_ordered_and_positive():
    def run(inputs):
        return sum(range(2_000)) * inputs["x"]

    figures = latency(run, {"x": 1}, {"x": [0] * 64}, calls=50)
    assert 0 < figures["p50_ms"] <= figures["p99_ms"] and figures["throughput_per_s"] > 0
    assert math.isfinite(figures["throughput_per_s"])


def test_a_scikit_learn_main_model_has_nothing_to_compress_and_the_report_says_so(tmp_path):
    import json

    from forgeml.models.tfidf_lr import tfidf_lr
    from forgeml.reporting import realtime
    from forgeml.tasks import compose
    from forgeml.tasks.sentiment.compress import compress, summarize
    from forgeml.tasks.sentiment.predictor import PREDICTOR_DIR, EstimatorTextPredictor

    cfg = compose(["experiment=sentiment_minilm", "model=tfidf_lr",
                   f"paths.models={tmp_path / 'models'}", f"paths.metrics={tmp_path / 'm'}",
                   f"paths.plots={tmp_path / 'p'}"])
    texts, labels = ["great fun", "dull and long", "a joy", "tedious"], [1, 0, 1, 0]
    EstimatorTextPredictor(tfidf_lr(min_df=1).fit(texts, labels), ["rotten", "fresh"]).save(
        tmp_path / "models" / PREDICTOR_DIR)
    result = compress(cfg)
    assert "scikit-learn pipeline" in summarize(cfg, result)
    assert json.loads((tmp_path / "p" / "compression.json").read_text()) == []
    assert realtime.section_of(cfg, "95%") == {"skipped": result["skipped"]}
    assert realtime.figures_of(cfg) == {}
