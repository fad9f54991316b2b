"""Accuracy targets on the real data sets, through `dvc repro` (minutes: `make test-slow`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import BIN, make_project, run

pytestmark = pytest.mark.slow


def test_default_experiment_reaches_097_on_mnist5k(tmp_path):
    project = make_project(tmp_path, experiment="digits_default")
    run([str(BIN / "dvc"), "repro"], cwd=project, timeout=1800)
    test = json.loads((project / "metrics/digits/test.json").read_text())
    assert test["acc"] >= 0.97, test
    assert test["acc"] > test["baseline_acc"]


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_seed_cnn_with_dropout_reaches_091_on_fashion_mnist(tmp_path):
    project = make_project(tmp_path, experiment="seed")
    # The seed CNN plus dropout: 0.908 without it (a hair under the target), above with it.
    run([str(BIN / "forgeml"), "compose", "data=fashion_mnist", "model.dropout=0.25"],
        cwd=project)
    run([str(BIN / "dvc"), "repro"], cwd=project, timeout=3000)
    test = json.loads((project / "metrics/digits/test.json").read_text())
    card = json.loads((project / "data/prepared/digits/data_card.json").read_text())
    assert card["counts"]["test"] >= 9900  # the official test split, minus train duplicates
    assert test["acc"] >= 0.91, test
