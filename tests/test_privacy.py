"""Differentially private training (privacy=dp), the membership-inference check, and the privacy
section of the report, on the real pipeline (scikit-learn's digits, a few epochs)."""

from __future__ import annotations

import json

import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from conftest import AFTER_FIRST_CHECKPOINT, BIN, killed_at, make_project, run

FORGEML = str(BIN / "forgeml")
EPOCHS = 3
DP = ["privacy=dp", "privacy.target_epsilon=2", f"trainer.max_epochs={EPOCHS}"]


def _rdp_epsilon(noise: float, rate: float, steps: int, delta: float) -> float:
    """What Opacus' own accountant says for these settings, computed apart from the run."""
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(noise, rate, steps)]
    return accountant.get_epsilon(delta=delta)


@pytest.fixture(scope="module")
def private_run(tmp_path_factory):
    """One DP-SGD pipeline run up to the report, its store the project's sqlite."""
    project = make_project(tmp_path_factory.mktemp("privacy"))
    run([FORGEML, "compose", *DP], cwd=project)
    for stage in ("prepare", "train", "evaluate", "report"):
        run([FORGEML, stage], cwd=project)
    return project


def _record(project):
    return json.loads((project / "models/digits/run.json").read_text())


@pytest.mark.slow  # a DP-SGD pipeline run: ~20-40 s (the fast tier's budget)
def test_epsilon_grows_every_epoch_and_matches_opacus_accountant(private_run):
    record = _record(private_run)
    card = json.loads((private_run / "data/prepared/digits/data_card.json").read_text())
    epsilons = [h["epsilon"] for h in record["history"]]
    assert len(epsilons) == EPOCHS and all(b > a > 0 for a, b in zip(epsilons, epsilons[1:],
                                                                     strict=False))
    steps_per_epoch = record["privacy_steps"] // EPOCHS
    assert record["privacy_delta"] == pytest.approx(1 / card["counts"]["train"])
    for epoch, epsilon in enumerate(epsilons, start=1):
        assert epsilon == pytest.approx(_rdp_epsilon(
            record["privacy_noise_multiplier"], record["privacy_sample_rate"],
            steps_per_epoch * epoch, record["privacy_delta"]), rel=1e-6)
    # The noise was planned to spend the target within trainer.max_epochs, not more.
    assert 1.9 < record["privacy_epsilon"] <= 2.0 + 1e-6
    logged = MlflowClient(f"sqlite:///{private_run / 'mlflow.db'}").get_metric_history(
        record["run_id"], "privacy/epsilon")
    assert [round(m.value, 6) for m in sorted(logged, key=lambda m: m.step)] == \
        [round(e, 6) for e in epsilons]


@pytest.mark.slow  # a DP-SGD pipeline run: ~20-40 s (the fast tier's budget)
def test_report_explains_the_guarantee_and_the_attack(private_run):
    report = (private_run / "reports/digits/report.md").read_text()
    section = report.split("## What does the model reveal about its training data?")[1]
    eps = _record(private_run)["privacy_epsilon"]
    assert f"ε = {eps:.2f}" in section and "attacker" in section
    assert "membership" not in section.lower() or "AUC" in section
    metrics = json.loads((private_run / "metrics/digits/test.json").read_text())
    assert 0 <= metrics["membership_auc"] <= 1
    assert f"AUC {metrics['membership_auc']:.3f}" in section
    train_metrics = json.loads((private_run / "metrics/digits/train.json").read_text())
    assert train_metrics["privacy_epsilon"] == pytest.approx(eps)  # a `dvc exp show` column


@pytest.mark.slow  # a killed and a resumed training: ~25 s
def test_a_killed_private_run_resumes_its_epsilon(tmp_path):
    project = make_project(tmp_path / "p")
    run([FORGEML, "compose", *DP], cwd=project)
    run([FORGEML, "prepare"], cwd=project)
    killed = run([FORGEML, "train"], cwd=project, check=False,
                 env=killed_at(AFTER_FIRST_CHECKPOINT))
    assert killed.returncode != 0 and not (project / "models/digits").exists()
    resumed = run([FORGEML, "train"], cwd=project)
    assert "resuming MLflow run" in resumed.stdout
    record = _record(project)
    epsilons = [h["epsilon"] for h in record["history"]]
    assert len(epsilons) == EPOCHS and all(b > a for a, b in zip(epsilons, epsilons[1:],
                                                                 strict=False))
    # Had ε restarted at 0 after the kill, the run would count only the resumed epochs' steps.
    steps_per_epoch = record["privacy_steps"] // EPOCHS
    assert record["privacy_steps"] == steps_per_epoch * EPOCHS
    assert record["privacy_epsilon"] == pytest.approx(_rdp_epsilon(
        record["privacy_noise_multiplier"], record["privacy_sample_rate"],
        record["privacy_steps"], record["privacy_delta"]), rel=1e-6)
    runs = MlflowClient(f"sqlite:///{project / 'mlflow.db'}").search_runs(["1"])
    assert len(runs) == 1


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("bad-privacy"))
    run([FORGEML, "prepare"], cwd=project)
    return project


@pytest.mark.parametrize("override, message", [
    ("privacy.target_epsilon=0", "privacy.target_epsilon=0"),
    ("privacy.target_epsilon=-1", "must be > 0"),
    ("privacy.delta=0.5", "must be below 1/N"),
    ("trainer.gradient_clip_val=1.0", "gradient_clip_val=null"),
])
def test_bad_privacy_settings_stop_with_one_line_and_write_nothing(prepared, override,
                                                                    message):
    params = f"bad-{override.split('=')[0]}.yaml"
    composed = run([FORGEML, "compose", "privacy=dp", override, "-o", params], cwd=prepared,
                   check=False)
    # Settings wrong on their own are refused when composed; δ against 1/N when training.
    result = run([FORGEML, "train", "-p", params], cwd=prepared, check=False) \
        if composed.returncode == 0 else composed
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (prepared / "models/digits").exists() and not (prepared / "mlflow.db").exists()


@pytest.mark.long  # more DP-SGD runs: ~4 min of CI time together
@pytest.mark.slow  # a DP-SGD pipeline run: ~20-40 s (the fast tier's budget)
def test_the_mlp_trains_privately_too(prepared):
    # Its own outputs: the bad-settings tests check that nothing lands in models/digits.
    run([FORGEML, "compose", "privacy=dp", "model=mlp", "trainer.max_epochs=2",
         "logger.log_model=false", "paths.models=models/mlp", "paths.metrics=metrics/mlp",
         "paths.plots=plots/mlp", "-o", "mlp.yaml"], cwd=prepared)
    result = run([FORGEML, "train", "-p", "mlp.yaml"], cwd=prepared,
                 env={"MLFLOW_TRACKING_URI": f"sqlite:///{prepared / 'mlp.db'}"})
    assert "DP-SGD ε=" in result.stdout
    record = json.loads((prepared / "models/mlp/run.json").read_text())
    assert [h["epsilon"] for h in record["history"]][-1] == pytest.approx(
        record["privacy_epsilon"]) and 0 < record["privacy_epsilon"] <= 3.0 + 1e-6
    assert record["best_val_acc"] > 0.3  # learns despite the noise (10 classes: 0.1 by chance)


def test_a_layer_dp_sgd_cannot_train_is_refused_with_the_fix():
    from forgeml.errors import ConfigError
    from forgeml.privacy.layers import private_network

    network = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    with pytest.raises(ConfigError, match="privacy.fix_layers=true") as refused:
        private_network(network, fix_layers=False)
    assert "BatchNorm" in str(refused.value)
    fixed = private_network(network, fix_layers=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fixed.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in fixed.modules())
    assert fixed(torch.zeros(2, 1, 8, 8)).shape == (2, 4, 6, 6)


@pytest.mark.slow  # a DP-SGD pipeline run: ~20-40 s (the fast tier's budget)
def test_the_attack_is_a_coin_flip_on_a_model_that_never_saw_the_data(private_run,
                                                                       monkeypatch):
    """A network that was never trained: its losses say nothing about which examples are the
    training split's, so the real evaluate-stage attack must find nothing."""
    from forgeml.data.tensors import load_split
    from forgeml.metrics import predict_probs
    from forgeml.tasks import load_params
    from forgeml.tasks.classification.evaluate import membership_attack
    from forgeml.tasks.classification.network import make_network

    monkeypatch.chdir(private_run)
    cfg = load_params("params.yaml")
    card = json.loads((private_run / "data/prepared/digits/data_card.json").read_text())
    torch.manual_seed(0)
    untrained = make_network(cfg, card)
    images, labels = load_split(cfg.paths.prepared, "test")
    result = membership_attack(cfg, untrained, predict_probs(untrained, images), labels)
    assert result["members"] == result["non_members"] == len(labels)
    assert abs(result["auc"] - 0.5) < 0.06
    assert result["auc_ci"][0] < 0.5 < result["auc_ci"][1]


def test_the_attack_sees_a_real_gap():
    """Members with visibly lower losses than non-members: the attack must say so."""
    import numpy as np

    from forgeml.privacy.membership import loss_threshold_attack

    rng = np.random.default_rng(0)
    leaky = loss_threshold_attack(rng.exponential(0.5, 2000), rng.exponential(1.0, 2000),
                                  200, 0.95, seed=0)
    assert leaky["auc"] > 0.6 and leaky["auc_ci"][0] > 0.5 and leaky["advantage"] > 0.1


def test_the_vectorised_auc_is_scikit_learns_with_ties():
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from forgeml.privacy.membership import auc

    rng = np.random.default_rng(1)
    members, others = np.round(rng.normal(0.2, 1, 300), 1), np.round(rng.normal(0, 1, 200), 1)
    expected = roc_auc_score(np.r_[np.ones(300), np.zeros(200)], np.r_[members, others])
    assert auc(members[None], others[None])[0] == pytest.approx(expected, abs=1e-12)


@pytest.mark.long  # more DP-SGD runs: ~4 min of CI time together
@pytest.mark.slow  # two DVC experiments up to evaluate: ~1.5 min
def test_privacy_table_runs_one_dvc_experiment_per_epsilon(tmp_path):
    project = make_project(tmp_path / "p")
    before = (project / "params.yaml").read_text()
    result = run([FORGEML, "privacy-table", "--epsilons", "2,inf", "-S", "trainer.max_epochs=2"],
                 cwd=project, timeout=900)
    assert (project / "params.yaml").read_text() == before  # --temp: the workspace is untouched
    table = json.loads((project / "reports/privacy/digits.json").read_text())
    assert [row["target_epsilon"] for row in table] == [2.0, "inf"]
    private, plain = table
    assert 0 < private["train_summary/privacy_epsilon"] <= 2.0 + 1e-6
    assert plain["train_summary/privacy_epsilon"] is None
    assert all(0 <= row["test/membership_auc"] <= 1 for row in table)
    assert "| 2 |" in (project / "reports/privacy/digits.md").read_text()
    assert "| ∞ |" in result.stdout
    shown = run([str(BIN / "dvc"), "exp", "show", "--csv"], cwd=project).stdout
    assert "privacy-eps-2" in shown and "privacy-eps-inf" in shown
    header = shown.splitlines()[0].split(",")
    row = next(line.split(",") for line in shown.splitlines() if "privacy-eps-2" in line)
    assert float(row[header.index("privacy_epsilon")]) == pytest.approx(
        private["train_summary/privacy_epsilon"])


def test_batches_are_sampled_from_the_secret_generator_not_the_global_seed():
    """The Poisson sample must not be replayable from params.yaml's seed: two runs with the
    same global seed draw different batches unless they share privacy.noise_seed."""
    from forgeml.data.tensors import TensorBatchDataset, tensor_loader
    from forgeml.training.privacy import PoissonBatches

    class Plain:  # the datamodule interface PoissonBatches wraps
        def train_dataloader(self):
            return tensor_loader(TensorBatchDataset(torch.arange(400)), 20, shuffle=True)

    def first_batches(seed: int) -> list[list[int]]:
        torch.manual_seed(0)  # the global seed, as pl.seed_everything(cfg.seed) sets it
        loader = PoissonBatches(Plain(), torch.Generator().manual_seed(seed)).train_dataloader()
        return [batch[0].tolist() for _, batch in zip(range(3), loader, strict=False)]

    assert first_batches(1) == first_batches(1)
    assert first_batches(1) != first_batches(2)


@pytest.mark.long  # more DP-SGD runs: ~4 min of CI time together
@pytest.mark.slow  # two DDP ranks (gloo) training privately: ~45 s
def test_dp_sgd_across_two_ddp_ranks_adds_one_noise_and_samples_each_example_once(tmp_path):
    """Each rank Poisson-samples its own shard and clips its own examples; the clipped sums
    are added over ranks and noised once: the ranks keep identical weights, an epoch sees
    about N examples in all (not N per rank), and ε is the single-device accountant's."""
    project = make_project(tmp_path / "p")
    run([FORGEML, "compose", *DP, "trainer=ddp_cpu", "logger.log_model=false"], cwd=project)
    run([FORGEML, "prepare"], cwd=project)
    result = run([FORGEML, "train"], cwd=project, timeout=600)
    assert "DP-SGD ε=" in result.stdout
    record = _record(project)
    card = json.loads((project / "data/prepared/digits/data_card.json").read_text())
    n = card["counts"]["train"]
    tags = MlflowClient(f"sqlite:///{project / 'mlflow.db'}").get_run(record["run_id"]).data.tags
    assert tags["forgeml.ddp_world_size"] == "2" and tags["forgeml.ddp_weights_identical"] == "true"
    per_epoch = record["train_samples_per_second"] * record["train_seconds"] / EPOCHS
    assert 0.85 * n < per_epoch < 1.15 * n
    assert record["privacy_epsilon"] == pytest.approx(_rdp_epsilon(
        record["privacy_noise_multiplier"], record["privacy_sample_rate"],
        record["privacy_steps"], record["privacy_delta"]), rel=1e-6)
    assert 1.9 < record["privacy_epsilon"] <= 2.0 + 1e-6
