"""compress (sentiment): can the fine-tuned transformer answer in real time, and what does a
cheaper model cost in accuracy? On the same test snippets, at a fixed thread count: PyTorch
fp32 (the trained model), ONNX fp32, ONNX int8 (dynamic quantisation), the transformer with
half its attention heads and feed-forward units pruned away and fine-tuned back on the
teacher's softened probabilities, and a TextCNN student distilled from it (Hinton et al., 2015);
the pruned model and the student are served as ONNX fp32."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from forgeml import tracking
from forgeml.compression import table
from forgeml.compression.distillation import fit
from forgeml.compression.pruning import prune
from forgeml.data.text_batches import encode, pad, read_split
from forgeml.models.registry import instantiate_network
from forgeml.saved_network import WEIGHTS_FILE, save_network
from forgeml.serving.export import build_bundle
from forgeml.serving.runtime import torch_runner
from forgeml.tasks.sentiment.export import exportable_predictor
from forgeml.tasks.sentiment.predictor import (
    PREDICTOR_DIR,
    NeuralTextPredictor,
    load_predictor,
)


def token_arrays(predictor: NeuralTextPredictor, texts: list[str]) -> dict[str, np.ndarray]:
    ids, mask = pad(encode(predictor.tokenizer, texts))
    return {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}


class TeacherTargets:
    """The training snippets as the teacher's tokens, their labels and the teacher's logits: what
    the pruned copy and the student both learn from."""

    def __init__(self, cfg: DictConfig, teacher: NeuralTextPredictor):
        texts, labels = read_split(cfg.paths.prepared, "train")
        # log p is the teacher's logits up to a constant per text: the softened targets agree.
        self.logits = torch.from_numpy(np.log(np.clip(teacher.predict_proba(texts), 1e-7, 1)))
        arrays = token_arrays(teacher, texts)
        self.inputs = (torch.from_numpy(arrays["input_ids"]),
                       torch.from_numpy(arrays["attention_mask"]))
        self.labels = torch.from_numpy(labels)

    def train(self, cfg: DictConfig, network: torch.nn.Module, epochs: int,
              lr: float) -> torch.nn.Module:
        c = cfg.compress
        return fit(network, self.inputs, self.labels, epochs, c.batch_size, lr, cfg.seed,
                   teacher_logits=self.logits, temperature=c.temperature, alpha=c.alpha)


def distilled_student(cfg: DictConfig, teacher: NeuralTextPredictor,
                      targets: TeacherTargets) -> NeuralTextPredictor:
    """The configured student trained on the teacher's softened probabilities and the labels."""
    # The student reads the teacher's tokens: same vocabulary, same truncation.
    student = instantiate_network(cfg.compress.student,
                                  vocab_size=teacher.tokenizer.get_vocab_size(),
                                  num_classes=len(teacher.class_names),
                                  max_length=teacher.network.max_length)
    targets.train(cfg, student, cfg.compress.distill_epochs, cfg.compress.lr)
    return NeuralTextPredictor(student, teacher.tokenizer_file, teacher.class_names)


def pruned_copy(cfg: DictConfig, teacher: NeuralTextPredictor,
                targets: TeacherTargets) -> NeuralTextPredictor:
    """The transformer without `compress.prune_amount` of its heads and feed-forward units,
    every remaining weight fine-tuned back on the teacher's softened probabilities."""
    c = cfg.compress
    pruned = prune(teacher.network, tuple(x[:2] for x in targets.inputs), c.prune_amount)
    targets.train(cfg, pruned.requires_grad_(True), c.finetune_epochs, c.finetune_lr)
    return NeuralTextPredictor(pruned, teacher.tokenizer_file, teacher.class_names)


def compress(cfg: DictConfig) -> dict:
    """Write metrics/<p>/compression.json and plots/<p>/compression.json; log to the run."""
    uri = tracking.tracking_uri(cfg)
    tracking.check_reachable(uri, cfg.logger.connect_timeout_s)
    teacher = load_predictor(Path(cfg.paths.models) / PREDICTOR_DIR)
    if not isinstance(teacher, NeuralTextPredictor):
        result = {"skipped": f"The model ({cfg.model._target_.rsplit('.', 1)[-1]}) is a "
                             "scikit-learn pipeline: it has no ONNX export, int8 model or "
                             "student to compare, and already answers in well under a "
                             "millisecond per text."}
        table.write_skipped(cfg, result)
        return result
    torch.manual_seed(cfg.seed)
    texts, labels = read_split(cfg.paths.prepared, "test")
    inputs = token_arrays(teacher, texts)
    single = token_arrays(teacher, texts[:1])
    batch = token_arrays(teacher, texts[:cfg.compress.throughput_batch])
    identity = {"task": "sentiment", "pipeline": cfg.pipeline.name, "run_id": "compress"}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        sample = {k: v[:256] for k, v in inputs.items()}
        base = build_bundle(exportable_predictor(teacher), sample, scratch / "teacher", True,
                            identity)
        targets = TeacherTargets(cfg, teacher)
        student = distilled_student(cfg, teacher, targets)
        student_bundle = build_bundle(exportable_predictor(student), sample,
                                      scratch / "student", False, identity)
        pruned = pruned_copy(cfg, teacher, targets)
        pruned_bundle = build_bundle(exportable_predictor(pruned), sample, scratch / "pruned",
                                     False, identity)
        save_network(teacher.network, scratch / "teacher-torch")
        reference = exportable_predictor(teacher).module
        result = table.table(cfg, [
            table.Variant(table.REFERENCE, "PyTorch fp32 (fine-tuned model)",
                          scratch / "teacher-torch" / WEIGHTS_FILE,
                          torch_runner(reference, ["input_ids", "attention_mask"],
                                       cfg.compress.threads)),
            table.Variant("onnx_fp32", "ONNX fp32", base.model_file("onnx")),
            table.Variant(table.INT8, "ONNX int8 (dynamic quantisation)",
                          base.model_file("int8")),
            table.Variant("pruned", f"pruned {cfg.compress.prune_amount:.0%} of heads and "
                                    "feed-forward units + fine-tuned (ONNX fp32)",
                          pruned_bundle.model_file("onnx")),
            table.Variant("student", f"distilled {type(student.network).__name__} student "
                                     "(ONNX fp32)", student_bundle.model_file("onnx")),
        ], inputs, labels, single, batch)
        table.write(cfg, result, [
            (save_network(pruned.network, scratch / "pruned-network"), "compression/pruned"),
            (save_network(student.network, scratch / "student-network"), "compression/student"),
            (base.model_file("int8"), "compression")])
    return result


def summarize(cfg: DictConfig, result: dict) -> str:
    return result["skipped"] if "skipped" in result else table.summarize(cfg, result)
