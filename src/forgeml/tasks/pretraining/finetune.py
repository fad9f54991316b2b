"""finetune (pretraining): every model on every labelled subset, with the same optimizer steps,
augmentation, warm-up and selection (the checkpoint best on validation accuracy); learning rate
and layer-wise decay per model (`finetune.lr`, `finetune.layer_lr_decay`) —
  pretrained: the pre-trained encoder + a new head, fine-tuned end to end;
  probe:      the pre-trained encoder frozen, only the head learns (a linear probe);
  scratch:    the identical network from random initialisation;
  cnn:        the seed CNN from scratch.
Each is an MLflow child run of the pre-training run, so the UI groups them under it.

Nothing is lost to a crash: a finished child's result is kept in `.forgeml/finetune/` as soon as
it is known and a rerun trains only the missing ones (one killed mid-training resumes from its
checkpoint in the same MLflow run); the stage's output folder is replaced only when all are done.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from forgeml import tracking
from forgeml.artifacts import BEST_CHECKPOINT, RUN_FILE, read_data_card, read_run
from forgeml.config import find_config_dir
from forgeml.data.base import image_columns
from forgeml.errors import DataError
from forgeml.io import atomic_dir, atomic_write_json, sha256_file
from forgeml.models.classifier import build_network
from forgeml.models.registry import instantiate_network
from forgeml.tasks.pretraining.prepare import SUBSETS_FILE, subset_key
from forgeml.tasks.pretraining.pretrain import ENCODER_FILE

RESULTS_FILE = "finetune.json"
WARMUP_FRACTION = 0.1
LABELS = {"pretrained": "pre-trained ViT, fine-tuned", "probe": "pre-trained ViT, linear probe",
          "scratch": "same ViT from scratch", "cnn": "seed CNN from scratch"}


@dataclass(frozen=True)
class Child:
    model: str  # a key of LABELS
    fraction: float
    steps: int

    @property
    def name(self) -> str:
        return f"{self.model}-{subset_key(self.fraction)}"


def finetuned_dir(cfg: DictConfig) -> Path:
    return Path(f"{cfg.paths.models}-finetune")


def children(cfg: DictConfig) -> list[Child]:
    return [Child(model, float(fraction), int(steps))
            for fraction, steps in zip(cfg.labels.fractions, cfg.finetune.steps, strict=True)
            for model in cfg.finetune.models]


def model_config(cfg: DictConfig, child: Child) -> dict:
    if child.model == "cnn":
        return OmegaConf.to_container(cfg.finetune.cnn, resolve=True)
    return {**OmegaConf.to_container(cfg.model, resolve=True),
            "freeze_encoder": child.model == "probe"}


def child_config(cfg: DictConfig, child: Child, folder: Path) -> DictConfig:
    """The child's own config: its model, its step budget validated `finetune.validations`
    times, its outputs in its work folder, no logged model (the stage keeps the weights)."""
    every = max(1, child.steps // int(cfg.finetune.validations))
    base = OmegaConf.to_container(cfg, resolve=True)
    base["model"] = model_config(cfg, child)
    base["trainer"].update({"max_steps": every * int(cfg.finetune.validations), "max_epochs": -1,
                            "val_check_interval": every, "check_val_every_n_epoch": None})
    base["train"]["early_stopping"]["enabled"] = False
    base["logger"]["log_model"] = False
    base["paths"].update({name: str(folder / name) for name in ("models", "metrics", "plots")})
    base["finetune"] = {"model": child.model, "label_fraction": child.fraction,
                        "lr": float(cfg.finetune.lr[child.model]),
                        "layer_lr_decay": float(
                            cfg.finetune.layer_lr_decay.get(child.model, 1.0)),
                        "weight_decay": float(cfg.finetune.weight_decay)}
    return OmegaConf.create(base)


def subset_card(card: dict, key: str, indices: torch.Tensor) -> dict:
    """The data card of a labelled subset: its counts, and a data hash of its own (the runs
    and their resume points tell subsets apart)."""
    labels_counts = card["label_subsets"][key]
    digest = hashlib.sha256((card["data_hash"] + key).encode())
    digest.update(indices.numpy().tobytes())
    return {**card, "counts": {**card["counts"], "train": labels_counts["count"]},
            "class_counts": {**card["class_counts"], "train": labels_counts["class_counts"]},
            "label_subset": key, "data_hash": digest.hexdigest()}


def finetune(cfg: DictConfig) -> dict:
    card = read_data_card(cfg)
    parent = read_run(cfg)["run_id"]  # the pre-training run
    encoder_path = Path(cfg.paths.models) / ENCODER_FILE
    if not encoder_path.is_file():
        raise DataError(f"{encoder_path} not found: run the pretrain stage first (`dvc repro "
                        f"{cfg.pipeline.dvc_file}`).")
    encoder = torch.load(encoder_path, map_location="cpu", weights_only=True)
    subsets = torch.load(Path(cfg.paths.prepared) / SUBSETS_FILE, weights_only=True)
    uri = tracking.tracking_uri(cfg)
    tracking.check_reachable(uri, cfg.logger.connect_timeout_s)
    work = find_config_dir().parent / ".forgeml" / "finetune" / cfg.pipeline.name
    encoder_hash = sha256_file(encoder_path)
    results = []
    for child in children(cfg):
        key = subset_key(child.fraction)
        if key not in subsets:
            raise DataError(f"The prepared data has no {key} labelled subset: rerun prepare "
                            "(`dvc repro`) after changing labels.fractions.")
        results.append(_child(cfg, child, subset_card(card, key, subsets[key]), subsets[key],
                              encoder if child.model in ("pretrained", "probe") else None,
                              encoder_hash, parent, work, uri))
    record = {"parent_run_id": parent, "children": results}
    with atomic_dir(finetuned_dir(cfg)) as out:
        for result in results:
            source = Path(result["folder"]) / "models"
            (out / result["name"]).mkdir()
            for name in (BEST_CHECKPOINT, RUN_FILE, "config.yaml"):
                shutil.copy2(source / name, out / result["name"] / name)
        atomic_write_json(out / RESULTS_FILE, record)
    atomic_write_json(Path(cfg.paths.metrics) / RESULTS_FILE, {
        result["name"]: {"val_acc": result["best_val_acc"], "labels": result["labels"]}
        for result in results})
    return record


def _child(cfg: DictConfig, child: Child, card: dict, indices: torch.Tensor,
           encoder: dict | None, encoder_hash: str, parent: str, work: Path,
           uri: str) -> dict:
    digest = hashlib.sha256(OmegaConf.to_yaml(child_config(cfg, child, Path("."))).encode())
    digest.update(card["data_hash"].encode())
    if encoder is not None:
        digest.update(encoder_hash.encode())
    folder = work / f"{child.name}-{digest.hexdigest()[:12]}"
    done = folder / "result.json"
    if done.is_file() and (folder / "models" / BEST_CHECKPOINT).is_file():
        kept = json.loads(done.read_text())
        if tracking.run_exists(uri, kept["run_id"]):
            return kept
        print(f"{child.name}: its kept result names MLflow run {kept['run_id']}, which "
              f"{tracking.display_uri(uri)} does not hold; training it again", flush=True)
        done.unlink()
    run_cfg = child_config(cfg, child, folder)
    # Named for what it is, so MLflow's runs table tells the children apart.
    record = _train(run_cfg, child, card, indices, encoder, tracking.ChildOf(
        parent, {"forgeml.finetune_model": child.model,
                 "forgeml.label_fraction": f"{child.fraction:g}"},
        run_name=f"{child.name}: {LABELS[child.model]}"))
    result = {"name": child.name, "model": child.model, "label": LABELS[child.model],
              "fraction": child.fraction, "labels": card["counts"]["train"],
              "steps": int(run_cfg.trainer.max_steps), "run_id": record["run_id"],
              "best_val_acc": record["best_val_acc"], "train_seconds": record["train_seconds"],
              "parameters": record["parameters"],
              "trainable_parameters": record["trainable_parameters"], "folder": str(folder)}
    atomic_write_json(done, result)
    return result


def _train(cfg: DictConfig, child: Child, card: dict, indices: torch.Tensor,
           encoder: dict | None, child_of: tracking.ChildOf) -> dict:
    import pytorch_lightning as pl

    from forgeml.training.classifier import ImageClassifier
    from forgeml.training.datamodules import SubsetDataModule
    from forgeml.training.fitting import FittedRun, fit

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    network = instantiate_network(cfg.model)
    if encoder is not None:
        network.encoder.load_state_dict(encoder)
    task = ImageClassifier(
        build_network(network, **card["normalization"]),
        optimizer=partial(torch.optim.AdamW, lr=cfg.finetune.lr,
                          weight_decay=cfg.finetune.weight_decay),
        augment=OmegaConf.to_container(cfg.data.augment), warmup_fraction=WARMUP_FRACTION,
        group_options={"layer_lr_decay": cfg.finetune.layer_lr_decay})  # unused by the CNN
    datamodule = SubsetDataModule(cfg.paths.prepared, indices, cfg.train.batch_size,
                                  cfg.train.eval_batch_size)

    def finish(fitted: FittedRun) -> dict:
        seconds = fitted.train_seconds
        return {
            "best_val_acc": fitted.best_score,  # the checkpoint kept (validation-selected)
            "epochs_trained": len(task.history), "stopped_early": False,
            "train_seconds": seconds,
            "train_samples_per_second": task.train_samples / seconds if seconds else 0.0,
            "parameters": sum(p.numel() for p in network.parameters()),
            "trainable_parameters": sum(p.numel() for p in network.parameters()
                                        if p.requires_grad),
        }

    return fit(cfg, task, datamodule, card, finish, image_columns(card), monitor="val/acc",
               mode="max", step_by_epoch=False, child_of=child_of)


def summarize(cfg: DictConfig, record: dict) -> str:
    rows = ", ".join(f"{r['name']} {r['best_val_acc']:.3f}" for r in record["children"])
    return f"fine-tuned {len(record['children'])} models (val acc): {rows}"
