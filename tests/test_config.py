"""Composition from conf/ and validation of params files: clear errors for bad keys."""

from __future__ import annotations

import pytest
import yaml
from omegaconf import OmegaConf

from conftest import BIN, REPO, run
from forgeml.config import write_params
from forgeml.errors import ConfigError
from forgeml.tasks import compose, load_params

CONF = REPO / "conf"


def test_default_composition_is_the_digits_experiment():
    cfg = compose([], CONF)
    assert cfg.pipeline.name == "digits" and cfg.data.name == "mnist5k"
    assert cfg.model._target_ == "forgeml.models.cnn.CNN"
    assert cfg.data.augment.enabled and cfg.train.early_stopping.enabled
    assert cfg.paths.prepared == "data/prepared/digits"  # interpolations resolved


@pytest.mark.parametrize("override,expected", [
    (["model=mlp"], "forgeml.models.mlp.MLP"),
    (["data=fashion_mnist"], "forgeml.models.cnn.CNN"),
])
def test_group_overrides(override, expected):
    cfg = compose(override, CONF)
    assert cfg.model._target_ == expected
    assert cfg.model.image_shape == list(cfg.data.image_shape)


@pytest.mark.parametrize("params,experiment", [
    ("params.yaml", None), ("pipelines/lm/params.yaml", "lm_gpt"),
    ("pipelines/recsys/params.yaml", "recsys_neumf"),
    ("pipelines/sentiment/params.yaml", "sentiment_minilm"),
    ("pipelines/gan/params.yaml", "gan_dcgan"), ("pipelines/ssl/params.yaml", "ssl_mae")])
def test_committed_params_yaml_matches_conf(params, experiment):
    """Each params.yaml is conf/'s snapshot of its experiment: a stale one would run (and
    report) another model than `forgeml compose experiment=...` gives."""
    committed = yaml.safe_load((REPO / params).read_text())
    overrides = [f"experiment={experiment}"] if experiment else []
    assert committed == OmegaConf.to_container(compose(overrides, CONF))


@pytest.mark.parametrize("override,fragment", [
    (["model=transformerz"], "model/transformerz"),
    (["trainer.max_epoch=3"], "max_epoch"),
    (["no_such_section.x=1"], "no_such_section"),
])
def test_unknown_overrides_fail_clearly(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        compose(override, CONF)


def test_unknown_key_in_params_file_is_named(tmp_path):
    path = write_params(compose([], CONF), tmp_path / "params.yaml")
    data = yaml.safe_load(path.read_text())
    data["train"]["batch_sise"] = 32
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"train\.batch_sise"):
        load_params(path)


def test_bad_values_are_rejected(tmp_path):
    path = write_params(compose([], CONF), tmp_path / "p.yaml")
    data = yaml.safe_load(path.read_text())
    data["data"]["split"]["val_fraction"] = 0.6
    data["data"]["split"]["test_fraction"] = 0.5
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="must be < 1"):
        load_params(path)


@pytest.mark.parametrize("overrides,message", [
    (["experiment=lm_gpt", "model.n_embd=100", "model.n_head=3"],
     r"model\.n_embd \(100\) must be divisible by model\.n_head \(3\)"),
    (["evaluate.confidence=1.5"], r"evaluate\.confidence must be in \(0, 1\)"),
    (["experiment=recsys_neumf", "evaluate.confidence=0"],
     r"evaluate\.confidence must be in \(0, 1\)"),
    (["data.num_classes=3"], "data.class_names has 10 names but data.num_classes is 3"),
])
def test_checks_every_task_shares_and_the_gpt_heads(overrides, message):
    with pytest.raises(ConfigError, match=message):
        compose(overrides, CONF)


def test_missing_params_file_says_how_to_make_it(tmp_path):
    with pytest.raises(ConfigError, match="forgeml compose"):
        load_params(tmp_path / "params.yaml")


def test_cli_reports_unknown_override_without_traceback(tmp_path):
    (tmp_path / "conf").symlink_to(CONF)
    result = run([str(BIN / "forgeml"), "compose", "trainer.max_epoch=3"], cwd=tmp_path,
                 check=False)
    assert result.returncode != 0
    assert "max_epoch" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "params.yaml").exists()


EXPERIMENTS = sorted(path.stem for path in (CONF / "experiment").glob("*.yaml"))
# What each task's train stage passes a network besides its config (from the data card).
NETWORK_INPUTS = {"classification": {}, "generative": {}, "lm": {"vocab_size": 65},
                  "pretraining": {},
                  "recsys": {"num_users": 10, "num_items": 20}, "sentiment": {"num_classes": 2}}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_validates_and_instantiates(experiment, tmp_path):
    """lightning-hydra-template's check, in-process: every shipped recipe composes, passes
    validation from a written params file, names a registered task whose stages load, and
    builds its network, optimizer and trainer."""
    import torch

    from forgeml.config import instantiate
    from forgeml.models.registry import instantiate_network, spec_of
    from forgeml.tasks import task_named

    cfg = load_params(write_params(compose([f"experiment={experiment}"], CONF),
                                   tmp_path / "params.yaml"))
    task = task_named(cfg.pipeline.task)
    for stage in task.stages:
        assert callable(task.stage(stage).run), stage
    network = instantiate_network(cfg.model, **NETWORK_INPUTS[task.name])
    assert isinstance(network, torch.nn.Module) and spec_of(network)["kwargs"]
    if "optimizer" in cfg:
        optimizer = instantiate(cfg.optimizer, "optimizer")(network.parameters())
        assert optimizer.param_groups[0]["lr"] > 0
    else:  # pre-training: AdamW built by its stages, one learning rate per fine-tuned model
        assert cfg.pretrain.lr > 0 and all(lr > 0 for lr in cfg.finetune.lr.values())
    trainer = instantiate(cfg.trainer, "trainer", logger=False, enable_checkpointing=False)
    assert trainer.max_epochs == cfg.trainer.get("max_epochs", trainer.max_epochs)


def test_a_stage_logs_where_its_own_params_say(tmp_path, monkeypatch):
    """Not where the root params.yaml says: a sub-pipeline's stage reads only its -p file."""
    from forgeml.tracking import default_tracking_uri, tracking_uri

    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text("{}\n")
    (tmp_path / "params.yaml").write_text("logger: {tracking_uri: 'http://team-server:5000'}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    own = OmegaConf.create({"logger": {"tracking_uri": None}})
    assert tracking_uri(own) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    # Commands outside a pipeline (retrain, predict) follow the root params' server.
    assert default_tracking_uri() == "http://team-server:5000"
