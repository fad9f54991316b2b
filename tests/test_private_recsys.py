"""DP-SGD for the recommender: one training interaction (with its negatives) is the example that
is clipped and counted, on the real pipeline (MovieLens-100k, a few epochs), and the
privacy/utility table of a pipeline with its own params file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import BIN, make_project, run
from forgeml.data.interactions import InteractionExamples
from forgeml.models.neumf import NeuMF
from forgeml.privacy import tradeoff
from forgeml.training.private_loss import PerRowBCE

FORGEML = str(BIN / "forgeml")
PARAMS = "pipelines/recsys/params.yaml"
EPOCHS = 2
TINY_DP = ["experiment=recsys_neumf", f"trainer.max_epochs={EPOCHS}", "model.factors=8",
           "model.layers=[16,8]", "train.batch_size=2048", "optimizer.lr=0.01",
           "evaluate.bootstrap_samples=200", "evaluate.full_ranking=false",
           "trainer.enable_progress_bar=false", "privacy=dp", "privacy.target_epsilon=4"]


# --- the example DP-SGD clips: one interaction and its negatives ---
def test_an_example_is_one_interaction_with_negatives_that_depend_on_it_alone():
    users, items = np.array([0, 0, 1, 2]), np.array([3, 5, 3, 9])
    examples = InteractionExamples(users, items, n_items=10, num_negatives=4, seed=0)
    pairs, labels = examples.__getitems__(list(range(4)) * 500)
    assert pairs.shape == (2000, 5, 2) and labels.shape == (2000, 5)
    assert (labels[:, 0] == 1).all() and (labels[:, 1:] == 0).all()
    assert (pairs[..., 0] == torch.as_tensor(users).repeat(500)[:, None]).all()  # one user/row
    own = torch.as_tensor(items).repeat(500)
    assert (pairs[:, 0, 1] == own).all()
    negatives = pairs[:, 1:, 1]
    assert not (negatives == own[:, None]).any()  # never the interaction's own item
    # User 0's other item (5) is drawn for its first interaction like any other item: which
    # negatives an example gets does not depend on the rest of the data.
    first = negatives[own == 3].flatten()
    counts = torch.bincount(first, minlength=10).float()
    assert counts[3] == 0 and (counts[[0, 1, 2, 4, 5, 6, 7, 8, 9]] > 0.8 * len(first) / 9).all()
    single, single_labels = examples[2]
    assert single.shape == (5, 2) and single_labels.tolist() == [1, 0, 0, 0, 0]


def _clipped_gradient(network: NeuMF, batch: tuple[torch.Tensor, torch.Tensor], clip: float
                      ) -> torch.Tensor:
    """The summed clipped gradient DP-SGD adds noise to (noise 0 here), as one vector."""
    from opacus import PrivacyEngine

    optimizer = torch.optim.SGD(network.parameters(), lr=0.0)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*batch), batch_size=8)
    engine = PrivacyEngine()
    _, private, criterion, _ = engine.make_private(
        module=network, optimizer=optimizer, data_loader=loader, criterion=PerRowBCE("sum"),
        noise_multiplier=0.0, max_grad_norm=clip, grad_sample_mode="ghost",
        loss_reduction="sum", poisson_sampling=False, wrap_model=False)
    private.zero_grad()
    criterion(network(batch[0]), batch[1]).backward()
    return torch.cat([p.grad.flatten() for p in network.parameters()])


def test_one_interaction_moves_the_clipped_update_by_at_most_the_clip_norm():
    """Neighbouring data sets differ by one interaction: removing it from the batch may change
    the update by at most max_grad_norm, although its five pairs each have a large gradient
    (with pairs as the unit it would move it by up to five times as much)."""
    torch.manual_seed(0)
    examples = InteractionExamples(np.arange(8) % 4, np.arange(8) * 3, n_items=40,
                                   num_negatives=4, seed=0)
    pairs, labels = examples.__getitems__(list(range(8)))
    clip = 0.01  # far below every example's own gradient norm: everything is clipped
    state = NeuMF(4, 40, factors=4, layers=(8, 4)).state_dict()

    def network() -> NeuMF:
        fresh = NeuMF(4, 40, factors=4, layers=(8, 4))
        fresh.load_state_dict(state)
        return fresh

    with_it = _clipped_gradient(network(), (pairs, labels), clip)
    without = _clipped_gradient(network(), (pairs[1:], labels[1:]), clip)
    moved = float((with_it - without).norm())
    assert 0.9 * clip < moved <= clip * (1 + 1e-4)


# --- the privacy/utility table's overrides for a pipeline with its own params file ---
def test_privacy_table_overrides_a_sub_pipelines_params_without_composing():
    assert tradeoff.overrides(3.0) == ["privacy=dp", "privacy.target_epsilon=3"]
    assert tradeoff.overrides(float("inf"), PARAMS) == [f"{PARAMS}:privacy.enabled=false"]
    assert tradeoff.overrides(1.0, PARAMS) == [f"{PARAMS}:privacy.enabled=true",
                                               f"{PARAMS}:privacy.target_epsilon=1"]
    assert tradeoff.for_file("trainer.max_epochs=3", PARAMS) == f"{PARAMS}:trainer.max_epochs=3"
    assert tradeoff.for_file("other.yaml:a=1", PARAMS) == "other.yaml:a=1"
    assert tradeoff.for_file("logger.tracking_uri=http://h:5000", PARAMS) == \
        f"{PARAMS}:logger.tracking_uri=http://h:5000"


def test_privacy_table_refuses_a_pipeline_without_privacy(tmp_path):
    project = make_project(tmp_path / "p")
    run([FORGEML, "compose", "experiment=lm_gpt", "-o", "lm.yaml"], cwd=project)
    result = run([FORGEML, "privacy-table", "-p", "lm.yaml", "--no-run"], cwd=project,
                 check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "has no privacy option" in result.stderr
    assert not (project / "reports/privacy").exists()


# --- the pipeline, end to end ---
@pytest.fixture(scope="module")
def private_recsys(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("private-recsys"))
    run([FORGEML, "compose", *TINY_DP, "-o", PARAMS], cwd=project)
    for stage in ("prepare", "train", "evaluate", "report"):
        run([FORGEML, stage, "-p", PARAMS], cwd=project)
    return project


@pytest.mark.long  # DP-SGD recommender runs: ~4 min of CI time
@pytest.mark.slow  # a DP-SGD recommender run: ~1 min
def test_private_recommender_counts_interactions_and_reports_its_guarantee(private_recsys):
    from opacus.accountants import RDPAccountant

    record = json.loads((private_recsys / "models/recsys/run.json").read_text())
    card = json.loads((private_recsys / "data/prepared/recsys/data_card.json").read_text())
    n = card["counts"]["train"]
    # The accounting unit is the interaction: δ = 1/N and the sample rate from N interactions.
    assert record["privacy_delta"] == pytest.approx(1 / n)
    assert record["privacy_sample_rate"] == pytest.approx(1 / -(-n // 2048), rel=0.02)
    accountant = RDPAccountant()
    accountant.history = [(record["privacy_noise_multiplier"], record["privacy_sample_rate"],
                           record["privacy_steps"])]
    assert record["privacy_epsilon"] == pytest.approx(accountant.get_epsilon(1 / n), rel=1e-6)
    assert 3.5 < record["privacy_epsilon"] <= 4.0 + 1e-6
    assert [h["epsilon"] for h in record["history"]][-1] == pytest.approx(
        record["privacy_epsilon"])
    logged = MlflowClient(f"sqlite:///{private_recsys / 'mlflow.db'}").get_metric_history(
        record["run_id"], "privacy/epsilon")
    assert len(logged) == EPOCHS

    test = json.loads((private_recsys / "metrics/recsys/test.json").read_text())
    assert test["hr_at_10"] > 0.2  # learns despite the noise (0.1 by chance among 100 items)
    assert 0 <= test["membership_auc"] <= 1
    report = (private_recsys / "reports/recsys/report.md").read_text()
    section = report.split("## What does the model reveal about its training data?")[1]
    assert f"ε = {record['privacy_epsilon']:.2f}" in section
    assert "one interaction, not a whole user" in section
    assert f"AUC {test['membership_auc']:.3f}" in section
    assert "no single training interaction can change it" in report


@pytest.mark.long  # DP-SGD recommender runs: ~4 min of CI time
@pytest.mark.slow  # one DVC experiment of the recommender up to evaluate: ~1 min
def test_privacy_table_of_the_recommender_reports_hr_at_10(tmp_path):
    project = make_project(tmp_path / "p")
    run([FORGEML, "compose", *TINY_DP[:-2], "trainer.max_epochs=1", "-o", PARAMS], cwd=project)
    run(["git", "-c", "user.email=t@forgeml.test", "-c", "user.name=test", "commit", "-qam",
         "tiny recommender"], cwd=project)
    before = (project / PARAMS).read_text()
    result = run([FORGEML, "privacy-table", "-p", PARAMS, "--epsilons", "4", "--name", "rec"],
                 cwd=project, timeout=900)
    assert (project / PARAMS).read_text() == before  # --temp: the workspace is untouched
    (row,) = json.loads((project / "reports/privacy/recsys-rec.json").read_text())
    assert row["target_epsilon"] == 4.0
    assert 3.0 < row["train_summary/privacy_epsilon"] <= 4.0 + 1e-6  # DP was on in that file
    assert row["test/hr_at_10_ci_low"] < row["test/hr_at_10"] < row["test/hr_at_10_ci_high"]
    assert 0 <= row["test/membership_auc"] <= 1
    table = (project / "reports/privacy/recsys-rec.md").read_text()
    assert "Test HR@10 (95% interval)" in table and f"{row['test/hr_at_10']:.1%}" in table
    assert "rec-eps-4" in result.stdout
