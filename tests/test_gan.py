"""The generative pipeline: the real `dvc repro pipelines/gan/dvc.yaml` on scikit-learn's 8x8
digits with a tiny DCGAN and `forgeml sample` (slow tier: ~1.5 min), FID/KID in the project's
feature space, the networks' shapes and the adversarial training step."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from PIL import Image

from conftest import AFTER_FIRST_CHECKPOINT, BIN, REPO, killed_at, make_project, run
from forgeml.errors import ConfigError
from forgeml.models.classifier import NormalizedNetwork
from forgeml.models.cnn import CNN
from forgeml.models.dcgan import DCGANDiscriminator, DCGANGenerator
from forgeml.models.registry import remember_spec
from forgeml.tasks import compose
from forgeml.tasks.generative.quality import FeatureSpace, fid_kid
from forgeml.tasks.generative.sample import check_request

FORGEML, DVC = str(BIN / "forgeml"), str(BIN / "dvc")
GAN_PARAMS = "pipelines/gan/params.yaml"
# Seconds: 8x8 digits, a width-8 DCGAN for 2 epochs, a 1-epoch feature classifier.
TINY = ["experiment=gan_dcgan", "data=digits", "model.width=8", "trainer.max_epochs=2",
        "train.batch_size=64", "train.fid_samples=200", "features.epochs=1",
        "evaluate.samples=300", "evaluate.bootstrap_samples=5",
        "evaluate.memorisation_samples=100", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def gan_project(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("gan"))
    run([FORGEML, "compose", *TINY, "-o", GAN_PARAMS], cwd=project)
    result = run([DVC, "repro", "pipelines/gan/dvc.yaml"], cwd=project)
    (project / "repro-gan.log").write_text(result.stdout + result.stderr)
    return project


def _client(project) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def _run_id(project) -> str:
    return json.loads((project / "models/gan/run.json").read_text())["run_id"]


# The GAN pipeline's end-to-end tests (~5 min of CI time) run in `make test-long`.
@pytest.mark.long
@pytest.mark.slow
# --- the pipeline, end to end ---
def test_pipeline_measures_fid_against_its_reference_points(gan_project):
    metrics = json.loads((gan_project / "metrics/gan/test.json").read_text())
    for key in ("fid", "fid_ci_low", "fid_ci_high", "kid", "fid_floor", "fid_noise",
                "fid_epoch1", "conditional_acc", "classifier_test_acc", "min_class_share",
                "copy_share_pixels"):
        assert np.isfinite(metrics[key]), key
    # The interval is how much FID moves between sample sets of other seeds: small next to it.
    assert metrics["fid_ci_low"] <= metrics["fid_ci_high"]
    assert metrics["fid_ci_high"] - metrics["fid_ci_low"] < 0.5 * metrics["fid"]
    # Real training images are far closer to the test images than noise is.
    assert metrics["fid_floor"] < 0.1 * metrics["fid_noise"]
    assert metrics["classifier_test_acc"] > 0.7  # the feature classifier learnt the classes
    per_class = (gan_project / "plots/gan/per_class.csv").read_text().splitlines()
    assert per_class[0] == "class,accuracy,fid,share" and len(per_class) == 11
    assert json.loads((gan_project / "metrics/gan/features/train.json").read_text())[
        "epochs_trained"] == 1


@pytest.mark.long
@pytest.mark.slow
def test_report_shows_samples_nearest_neighbours_and_verdict(gan_project):
    html = (gan_project / "reports/gan/report.html").read_text()
    for section in ('id="verdict"', 'id="samples"', 'id="originality"', 'id="training"',
                    "FID", "Real training images (the floor)", "Uniform noise",
                    "recognised as that class", "expected share",
                    "dvc repro pipelines/gan/dvc.yaml"):
        assert section in html, section
    assert html.count("data:image/png;base64,") >= 5  # strip, per class, bars, pairs, curves
    md = (gan_project / "reports/gan/report.md").read_text()
    assert "![samples over training](figures/strip.png)" in md
    assert (gan_project / "reports/gan/figures/nearest.png").stat().st_size > 1000


@pytest.mark.long
@pytest.mark.slow
def test_run_logs_fid_per_epoch_sample_grids_and_the_generator(gan_project):
    client, run_id = _client(gan_project), _run_id(gan_project)
    assert [m.step for m in client.get_metric_history(run_id, "val/fid")] == [1, 2]
    samples = [f.path for f in client.list_artifacts(run_id, "samples")]
    assert samples == [f"samples/epoch_{e:03d}.png" for e in (1, 2)]
    assert client.get_run(run_id).data.metrics["test/fid"] > 0
    # The logged MLflow model draws images from (noise, class) rows, without ForgeML's CLI.
    import mlflow.pyfunc

    from forgeml.tracking import download

    local = download(f"sqlite:///{gan_project / 'mlflow.db'}", run_id, "model")
    codes = np.random.default_rng(0).normal(size=(3, 65)).astype(np.float32)
    codes[:, -1] = [0, 4, 9]
    images = mlflow.pyfunc.load_model(local).predict(codes)
    assert images.shape == (3, 1, 8, 8) and images.min() >= -1 and images.max() <= 1
    # The feature classifier is its own run, in its own experiment.
    features = client.get_experiment_by_name("gan-features")
    assert len(client.search_runs([features.experiment_id])) == 1


@pytest.mark.long
@pytest.mark.slow
def test_gan_pipeline_is_up_to_date_after_repro(gan_project):
    status = run([DVC, "status", "pipelines/gan/dvc.yaml"], cwd=gan_project)
    assert "up to date" in status.stdout


@pytest.mark.long
@pytest.mark.slow
def test_changing_the_gan_does_not_retrain_the_feature_classifier(gan_project):
    """The features stage reads only its own model and epochs: a GAN experiment reuses it."""
    params = gan_project / GAN_PARAMS
    original = params.read_text()
    try:
        run([FORGEML, "compose", *TINY, "model.width=16", "trainer.max_epochs=3",
             "-o", GAN_PARAMS], cwd=gan_project)
        status = run([DVC, "status", "pipelines/gan/dvc.yaml"], cwd=gan_project).stdout
        assert "pipelines/gan/dvc.yaml:train" in status
        assert "pipelines/gan/dvc.yaml:features" not in status
    finally:
        params.write_text(original)


@pytest.mark.long
@pytest.mark.slow
# --- forgeml sample ---
def test_sample_writes_a_png_grid_and_seeded_npz(gan_project, tmp_path):
    run_id = _run_id(gan_project)
    grid = tmp_path / "grid.png"
    run([FORGEML, "sample", "--run", run_id, "-n", "20", "-o", str(grid)], cwd=gan_project)
    with Image.open(grid) as picture:
        assert picture.format == "PNG" and picture.size[1] > picture.size[0]  # 10 class rows
    arrays = []
    for name in ("a.npz", "b.npz"):
        run([FORGEML, "sample", "--run", run_id, "-n", "6", "--class", "3", "--seed", "7",
             "-o", str(tmp_path / name)], cwd=gan_project)
        arrays.append(np.load(tmp_path / name))
    assert arrays[0]["images"].shape == (6, 1, 8, 8) and arrays[0]["images"].dtype == np.uint8
    assert arrays[0]["labels"].tolist() == [3] * 6
    assert np.array_equal(arrays[0]["images"], arrays[1]["images"])  # same seed, same images
    # The registry's champion, once a team registers one.
    client = _client(gan_project)
    client.create_registered_model("gan")
    version = client.create_model_version("gan", f"runs:/{run_id}/model", run_id=run_id)
    client.set_registered_model_alias("gan", "champion", version.version)
    run([FORGEML, "sample", "--run", "champion", "-n", "6", "--class", "3", "--seed", "7",
         "-o", str(tmp_path / "c.npz")], cwd=gan_project)
    assert np.array_equal(np.load(tmp_path / "c.npz")["images"], arrays[0]["images"])


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.parametrize("args,message", [
    (["--class", "10"], "--class 10 is out of range: this generator draws classes 0 to 9"),
    (["-n", "0"], "-n 0: ask for at least one image"),
    (["-o", "out.jpg"], "must end in .png"),
])
def test_bad_sample_requests_fail_clearly_and_write_nothing(gan_project, tmp_path, args,
                                                           message):
    output = ["-o", str(tmp_path / "out.png")] if "-o" not in args else []
    args = [a if a != "out.jpg" else str(tmp_path / a) for a in args]
    result = run([FORGEML, "sample", "--run", _run_id(gan_project), *output, *args],
                 cwd=gan_project, check=False)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.long
@pytest.mark.slow
def test_sample_refuses_a_run_that_logged_no_generator(pipeline_project, tmp_path):
    run_id = json.loads((pipeline_project / "models/digits/run.json").read_text())["run_id"]
    result = run([FORGEML, "sample", "--run", run_id, "-o", str(tmp_path / "g.png")],
                 cwd=pipeline_project, check=False)
    assert result.returncode != 0 and "did not log a generator" in result.stderr
    assert not (tmp_path / "g.png").exists()


def test_an_unconditional_generator_cannot_be_asked_for_a_class(tmp_path):
    generator = DCGANGenerator([1, 8, 8], num_classes=0, latent_dim=4, width=4)
    with pytest.raises(ConfigError, match="unconditional"):
        check_request(generator, 4, 2, tmp_path / "g.png")
    check_request(generator, 4, None, tmp_path / "g.png")


def test_gan_params_file_is_the_composed_experiment():
    from omegaconf import OmegaConf

    shipped = OmegaConf.load(REPO / GAN_PARAMS)
    composed = compose(["experiment=gan_dcgan"], config_dir=REPO / "conf")
    assert OmegaConf.to_container(shipped) == OmegaConf.to_container(composed)


def test_gan_config_problems_name_the_key_to_fix():
    with pytest.raises(ConfigError) as err:
        compose(["experiment=gan_dcgan", "gan.ema_decay=1.0", "gan.loss=hinge",
                 "data.image_shape=[1,30,30]"], config_dir=REPO / "conf")
    for fragment in ("gan.ema_decay must be in [0, 1)", "gan.loss must be", "divisible by 4"):
        assert fragment in str(err.value)


# --- the measures and the networks ---
def _digits_features() -> tuple[FeatureSpace, torch.Tensor]:
    from sklearn.datasets import load_digits

    images = torch.tensor(load_digits().images / 16.0, dtype=torch.float32).unsqueeze(1)
    torch.manual_seed(0)
    cnn = remember_spec(CNN([1, 8, 8], 10, channels=8, hidden=32),
                        {"image_shape": [1, 8, 8], "num_classes": 10, "channels": 8, "hidden": 32})
    network = NormalizedNetwork(cnn, 0.3, 0.4)
    return FeatureSpace(network), images


def test_fid_of_identical_sets_is_zero_and_grows_with_a_shift():
    space, images = _digits_features()
    real = space.features(images)
    same_fid, same_kid = fid_kid(real, real.clone())
    assert abs(same_fid) < 1e-3 and abs(same_kid) < 1e-3
    shifted = [fid_kid(real, space.features((images + s).clamp(0, 1)))[0]
               for s in (0.1, 0.3)]
    assert 0.01 < shifted[0] < shifted[1]


def test_generator_draws_images_in_range_from_one_or_two_inputs():
    generator = DCGANGenerator([1, 28, 28], num_classes=10, latent_dim=16, width=8).eval()
    z, labels = torch.randn(5, 16), torch.tensor([0, 1, 2, 3, 9])
    with torch.no_grad():
        pixels = generator(z, labels)
        single = generator(torch.cat([z, labels.unsqueeze(1).float()], dim=1))
    assert pixels.shape == (5, 1, 28, 28) and pixels.min() >= -1 and pixels.max() <= 1
    assert torch.equal(pixels, single)  # the logged model's one-array input
    images = generator.sample(5, labels, generator=torch.Generator().manual_seed(0))
    assert images.min() >= 0 and images.max() <= 1
    assert DCGANDiscriminator([1, 28, 28], 10, 16, 8)(pixels, labels).shape == (5,)
    with pytest.raises(ValueError, match="divisible by 4"):
        DCGANGenerator([1, 30, 30], 10, 16, 8)


def test_one_manual_step_updates_both_networks_and_the_average():
    import pytorch_lightning as pl

    from forgeml.data.tensors import TensorBatchDataset, tensor_loader
    from forgeml.tasks.generative.adversarial import AdversarialTraining

    space, images = _digits_features()
    generator = DCGANGenerator([1, 8, 8], 10, 8, 4)
    discriminator = DCGANDiscriminator([1, 8, 8], 10, 8, 4)
    module = AdversarialTraining(
        generator, discriminator, space,
        optimizer=lambda params: torch.optim.Adam(params, 2e-3, betas=(0.5, 0.999)),
        loss="non_saturating", label_smoothing=0.1, ema_decay=0.9, fid_samples=50,
        grid_per_class=2, seed=0)
    before = {name: [p.detach().clone() for p in net.parameters()]
              for name, net in (("generator", generator), ("discriminator", discriminator),
                                ("average", module.averaged))}
    data = TensorBatchDataset(images[:128], torch.arange(128) % 10)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=1, num_sanity_val_steps=0)
    trainer.fit(module, tensor_loader(data, 64, True), tensor_loader(data, 64, False))
    for name, net in (("generator", generator), ("discriminator", discriminator),
                      ("average", module.averaged)):
        after = list(net.parameters())
        assert any(not torch.equal(a, b) for a, b in zip(after, before[name], strict=True)), name
    assert len(module.history) == 1 and np.isfinite(module.history[0]["val_fid"])
    assert module.grids[0].shape == (20, 1, 8, 8) and module.grids[0].dtype == torch.uint8
    assert module.epoch1_generator  # the reference point of evaluate


@pytest.mark.long
@pytest.mark.slow
def test_a_killed_gan_training_resumes_its_run_grids_and_reference_point(gan_project):
    """kill -9 after the first epoch's checkpoint: the rerun continues the same MLflow run and
    keeps what the first epoch left (its grid, the epoch-1 generator evaluate compares with)."""
    import shutil

    shutil.rmtree(gan_project / "models/gan")
    killed = run([FORGEML, "train", "-p", GAN_PARAMS], cwd=gan_project, check=False,
                 env=killed_at(AFTER_FIRST_CHECKPOINT))
    assert killed.returncode == -9 and not (gan_project / "models/gan").exists()
    resumed = run([FORGEML, "train", "-p", GAN_PARAMS], cwd=gan_project)
    assert "resuming MLflow run" in resumed.stdout + resumed.stderr
    record = json.loads((gan_project / "models/gan/run.json").read_text())
    assert [h["epoch"] for h in record["history"]] == [1, 2]
    assert [m.step for m in _client(gan_project).get_metric_history(
        record["run_id"], "val/fid")] == [1, 2]
    grids = torch.load(gan_project / "models/gan/grids.pt", weights_only=True)
    assert grids["epochs"].tolist() == [1, 2]
    assert torch.load(gan_project / "models/gan/generator_epoch1.pt", weights_only=True)
