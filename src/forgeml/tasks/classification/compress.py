"""compress (classification): can the model run in real time, and what does a cheaper one
cost in accuracy? On the same test split, at a fixed thread count: PyTorch fp32 (the trained
model), ONNX fp32, ONNX int8 (dynamic quantisation), a structurally pruned copy fine-tuned back,
and a distilled student, each served as ONNX fp32 (see compression/table.py for what is
measured; the int8 gate is `compress.int8_max_drop` accuracy points)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from omegaconf import DictConfig

from forgeml import tracking
from forgeml.artifacts import read_data_card
from forgeml.compression import table
from forgeml.compression.distillation import fit, logits_of
from forgeml.compression.pruning import prune
from forgeml.data.tensors import load_split
from forgeml.models.classifier import build_network
from forgeml.models.registry import instantiate_network
from forgeml.saved_network import WEIGHTS_FILE, save_network
from forgeml.serving.bundle import Bundle
from forgeml.serving.export import build_bundle
from forgeml.serving.runtime import torch_runner
from forgeml.tasks.classification.export import exportable_network
from forgeml.tasks.classification.network import load_network


def exported(network, cfg: DictConfig, images: torch.Tensor, folder: Path,
             quantize: bool) -> Bundle:
    exportable = exportable_network(network, cfg.data.class_names, cfg.data.image_shape)
    return build_bundle(exportable, {"images": images[:256].numpy()}, folder, quantize,
                        {"task": "classification", "pipeline": cfg.pipeline.name,
                         "run_id": "compress"})


def compress(cfg: DictConfig) -> dict:
    """Write metrics/<p>/compression.json and plots/<p>/compression.json; log to the run."""
    c = cfg.compress
    uri = tracking.tracking_uri(cfg)
    tracking.check_reachable(uri, cfg.logger.connect_timeout_s)
    norm = read_data_card(cfg)["normalization"]
    teacher = load_network(cfg)
    train_images, train_labels = load_split(cfg.paths.prepared, "train")
    images, labels = load_split(cfg.paths.prepared, "test")
    torch.manual_seed(cfg.seed)

    # A pruned copy fine-tuned, or a student distilled, on the training data without DP-SGD
    # would not keep a private model's guarantee: under privacy=dp only data-free variants.
    retrained = not cfg.privacy.enabled
    if retrained:
        pruned = prune(teacher[1], (train_images[:2] - norm["mean"]) / norm["std"],
                       c.prune_amount)
        pruned = fit(build_network(pruned, **norm), (train_images,), train_labels,
                     c.finetune_epochs, cfg.train.batch_size, c.lr, cfg.seed)
        student = fit(build_network(instantiate_network(c.student), **norm), (train_images,),
                      train_labels, c.distill_epochs, cfg.train.batch_size, c.lr, cfg.seed,
                      teacher_logits=logits_of(teacher, (train_images,)),
                      temperature=c.temperature, alpha=c.alpha)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        base = exported(teacher, cfg, train_images, scratch / "teacher", quantize=True)
        save_network(teacher, scratch / "teacher-torch")
        probabilities = torch.nn.Sequential(teacher, torch.nn.Softmax(-1))
        variants = [
            table.Variant(table.REFERENCE, "PyTorch fp32 (trained model)",
                          scratch / "teacher-torch" / WEIGHTS_FILE,
                          torch_runner(probabilities, ["images"], c.threads)),
            table.Variant("onnx_fp32", "ONNX fp32", base.model_file("onnx")),
            table.Variant(table.INT8, "ONNX int8 (dynamic quantisation)",
                          base.model_file("int8")),
        ]
        logged = [(base.model_file("int8"), "compression")]
        if retrained:
            variants += [
                table.Variant("pruned", f"pruned {c.prune_amount:.0%} + fine-tuned (ONNX fp32)",
                              exported(pruned, cfg, train_images, scratch / "pruned",
                                       quantize=False).model_file("onnx")),
                table.Variant("student", "distilled student (ONNX fp32)",
                              exported(student, cfg, train_images, scratch / "student",
                                       quantize=False).model_file("onnx")),
            ]
            logged = [(save_network(pruned, scratch / "pruned-network"), "compression/pruned"),
                      (save_network(student, scratch / "student-network"),
                       "compression/student"), *logged]
        result = table.table(cfg, variants, {"images": images.numpy()}, labels.numpy(),
                             {"images": images[:1].numpy()},
                             {"images": images[:c.throughput_batch].numpy()})
        table.write(cfg, result, logged)
    return result


summarize = table.summarize
