"""What one stage leaves for the next: the data card, the run record, the best checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from omegaconf import DictConfig

from forgeml.errors import DataError

RUN_FILE = "run.json"
BEST_CHECKPOINT = "best.ckpt"
DATA_CARD = "data_card.json"


def read_data_card(cfg: DictConfig) -> dict:
    path = Path(cfg.paths.prepared) / DATA_CARD
    if not path.is_file():
        raise DataError(f"{path} not found: run the prepare stage first (`dvc repro`).")
    return json.loads(path.read_text())


def read_run(cfg: DictConfig) -> dict:
    path = Path(cfg.paths.models) / RUN_FILE
    if not path.is_file():
        raise DataError(f"{path} not found: run the train stage first (`dvc repro`).")
    return json.loads(path.read_text())


def read_evaluation(cfg: DictConfig) -> dict:
    path = Path(cfg.paths.eval) / "evaluation.json"
    if not path.is_file():
        raise DataError(f"{path} not found: run the evaluate stage first (`dvc repro`).")
    return json.loads(path.read_text())


def load_best_weights(cfg: DictConfig, network: torch.nn.Module,
                      prefix: str = "network.") -> torch.nn.Module:
    """Load the best checkpoint of the last train stage into `network`; return it in eval mode."""
    path = Path(cfg.paths.models) / BEST_CHECKPOINT
    if not path.is_file():
        raise DataError(f"{path} not found: run the train stage first (`dvc repro`).")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    except Exception as err:  # noqa: BLE001 - truncated, corrupted or not a checkpoint at all
        raise DataError(f"{path} is unreadable ({str(err).splitlines()[0][:160]}): retrain it "
                        "(`dvc repro --force-downstream` or `forgeml train`).") from None
    network.load_state_dict({k.removeprefix(prefix): v for k, v in state.items()
                             if k.startswith(prefix)})
    return network.eval()
