"""Metrics against known values, bootstrap intervals, and atomic outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from forgeml.bootstrap import bootstrap_interval, paired_bootstrap_difference
from forgeml.io import atomic_dir, atomic_write_json
from forgeml.metrics import classification_metrics


def test_classification_metrics_known_values():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    predicted = torch.tensor([0, 1, 1, 1, 2, 0])
    probs = torch.nn.functional.one_hot(predicted, 3).float() * 0.9 + 0.1 / 3
    result = classification_metrics(probs, labels, num_classes=3)
    assert result["acc"] == pytest.approx(4 / 6)
    assert result["per_class"]["recall"] == pytest.approx([0.5, 1.0, 0.5])
    assert result["per_class"]["precision"] == pytest.approx([0.5, 2 / 3, 1.0])
    assert result["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # Confidence 0.933 for every prediction, accuracy 0.667: ECE is the gap.
    assert result["ece"] == pytest.approx(0.9 + 0.1 / 3 - 4 / 6, abs=1e-4)


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_data():
    rng = np.random.default_rng(1)
    small = (rng.random(100) < 0.8).astype(float)
    large = (rng.random(10000) < 0.8).astype(float)
    low, high = bootstrap_interval(small)
    assert low < small.mean() < high
    low_l, high_l = bootstrap_interval(large)
    assert high_l - low_l < (high - low) / 5


def test_paired_difference_detects_a_real_gain():
    a = np.ones(500, dtype=bool)
    b = np.r_[np.ones(400), np.zeros(100)].astype(bool)
    gain = paired_bootstrap_difference(a, b)
    assert gain["difference"] == pytest.approx(0.2) and gain["low"] > 0
    same = paired_bootstrap_difference(b, b)
    assert same["difference"] == 0 and same["p_not_better"] == 1.0


def test_atomic_dir_leaves_nothing_on_failure_and_keeps_the_old_output(tmp_path):
    target = tmp_path / "out"
    with atomic_dir(target) as staging:
        atomic_write_json(staging / "a.json", {"v": 1})
    with pytest.raises(RuntimeError), atomic_dir(target) as staging:
        (staging / "a.json").write_text("half")
        raise RuntimeError("crash mid-write")
    assert (target / "a.json").read_text().strip().startswith("{")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
