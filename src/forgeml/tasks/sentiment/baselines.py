"""baselines (sentiment): train each comparison model of `baselines` (frozen encoder, scratch
encoder, TextCNN, TF-IDF + LR, ...) on the same split with the same train function as the main
model; each gets its own MLflow run in `<experiment>-baselines`. All of them appear under
paths.baselines together, or not at all."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

import forgeml.tasks.sentiment.train as train_stage
from forgeml.io import replace_dir
from forgeml.tasks.sentiment.predictor import BASELINE_MODEL_DIR


def baseline_config(cfg: DictConfig, name: str, root: Path) -> DictConfig:
    """The main config with the baseline's model (and optimizer / trainer / train overrides),
    writing into root/<name>/ and logging to the baselines experiment, without a logged model."""
    entry = cfg.baselines[name]
    merged = OmegaConf.merge(cfg, {
        "model": None, "optimizer": entry.get("optimizer") or {},
        "trainer": entry.get("trainer") or {}, "train": entry.get("train") or {},
        "logger": {"experiment_name": f"{cfg.logger.experiment_name}-baselines",
                   "log_model": False},
        "paths": {"models": str(root / name / BASELINE_MODEL_DIR), "metrics": str(root / name),
                  "plots": str(root / name)},
    })
    merged.model = entry.model
    OmegaConf.set_struct(merged, False)
    merged.pop("baselines")
    return merged


def baselines(cfg: DictConfig) -> dict | None:
    """Train every baseline; write paths.baselines/<name>/{model/, train.json, ...}."""
    from pytorch_lightning.utilities import rank_zero_only

    # Under DDP every rank runs this whole command and trains each baseline together; only the
    # launching rank (0) prepares the staging folder and writes the outputs.
    is_launcher = rank_zero_only.rank == 0
    target = Path(cfg.paths.baselines)
    root = target.with_name(f".{target.name}.partial")
    if is_launcher:
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
    records = {}
    try:
        for name in cfg.baselines:
            record = train_stage.train(baseline_config(cfg, name, root))
            if record is None:  # a DDP worker rank
                continue
            label = cfg.baselines[name].get("label") or name
            records[name] = {"label": label, **record}
            (root / name / "label.txt").write_text(label)
    except BaseException:
        if is_launcher:
            shutil.rmtree(root, ignore_errors=True)
        raise
    if not is_launcher:
        return None
    (root / "baselines.json").write_text(json.dumps(records, indent=2, sort_keys=True))
    replace_dir(root, target)
    return records


def summarize(cfg: DictConfig, records: dict) -> str:
    return "; ".join(f"{r['label']}: val acc {r['best_val_acc']:.4f} in {r['train_seconds']:.0f} s"
                     for r in records.values())
