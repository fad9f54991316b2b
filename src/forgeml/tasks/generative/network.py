"""The GAN's networks without Lightning: the generator and discriminator built from config, the
frozen feature classifier of the features stage, and the generators the train stage kept (the
best by validation FID, and the one after the first epoch)."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from forgeml.artifacts import load_best_weights, read_data_card
from forgeml.errors import DataError
from forgeml.models.dcgan import DCGANDiscriminator, DCGANGenerator
from forgeml.models.registry import instantiate_network, remember_spec
from forgeml.tasks.classification.network import make_network
from forgeml.tasks.generative.quality import FeatureSpace

EPOCH1_FILE = "generator_epoch1.pt"
GRIDS_FILE = "grids.pt"


def make_networks(cfg: DictConfig) -> tuple[DCGANGenerator, DCGANDiscriminator]:
    generator = instantiate_network(cfg.model)
    arguments = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items()
                 if not k.startswith("_")}
    return generator, remember_spec(DCGANDiscriminator(**arguments), arguments)


def features_config(cfg: DictConfig) -> DictConfig:
    """The classification train config for the feature classifier."""
    features, paths = cfg.features, cfg.paths
    merged = OmegaConf.merge(cfg, {
        "model": None, "optimizer": None,
        "trainer": {"max_epochs": features.epochs},
        "data": {"augment": {"enabled": False}},
        "train": {"early_stopping": {"enabled": False, "monitor": "val/loss", "mode": "min"}},
        "logger": {"experiment_name": f"{cfg.logger.experiment_name}-features",
                   "log_model": False},
        "paths": {"models": paths.features, "metrics": str(Path(paths.metrics) / "features"),
                  "plots": str(Path(paths.plots) / "features")},
    })
    with open_dict(merged):  # a measuring instrument, trained on public data as it is
        merged.privacy = {"enabled": False, "fix_layers": False}
    merged.model = features.model
    merged.optimizer = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": features.lr}
    return merged


def load_features(cfg: DictConfig) -> FeatureSpace:
    """The frozen classifier of the features stage, as a feature space."""
    derived = features_config(cfg)
    classifier = load_best_weights(derived, make_network(derived, read_data_card(cfg)))
    return FeatureSpace(classifier, cfg.train.eval_batch_size)


def load_generator(cfg: DictConfig) -> DCGANGenerator:
    """The best generator of the last train stage (its weight average), in eval mode."""
    generator, _ = make_networks(cfg)
    return load_best_weights(cfg, generator, prefix="generator_ema.module.")


def load_epoch1_generator(cfg: DictConfig) -> DCGANGenerator:
    generator, _ = make_networks(cfg)
    path = Path(cfg.paths.models) / EPOCH1_FILE
    if not path.is_file():
        raise DataError(f"{path} not found: run the train stage first (`dvc repro`).")
    generator.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return generator.eval()
