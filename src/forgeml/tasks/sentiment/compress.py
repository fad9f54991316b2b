"""compress (sentiment): can the fine-tuned transformer answer in real time, and what does a
cheaper model cost in accuracy? On the same test snippets, at a fixed thread count: PyTorch
fp32 (the trained model), ONNX fp32, ONNX int8 (dynamic quantisation) and a TextCNN student
distilled from it (Hinton et al., 2015), served as ONNX fp32. Structured pruning of the
transformer is not among them yet (docs/serving.md)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from forgeml import tracking
from forgeml.compression import table
from forgeml.compression.distillation import fit
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


def distilled_student(cfg: DictConfig, teacher: NeuralTextPredictor) -> NeuralTextPredictor:
    """The configured student trained on the teacher's softened probabilities and the labels."""
    c = cfg.compress
    texts, labels = read_split(cfg.paths.prepared, "train")
    # log p is the teacher's logits up to a constant per text: the softened targets are equal.
    teacher_logits = torch.from_numpy(np.log(np.clip(teacher.predict_proba(texts), 1e-7, 1)))
    arrays = token_arrays(teacher, texts)
    # The student reads the teacher's tokens: same vocabulary, same truncation.
    student = instantiate_network(c.student, vocab_size=teacher.tokenizer.get_vocab_size(),
                                  num_classes=len(teacher.class_names),
                                  max_length=teacher.network.max_length)
    fit(student, (torch.from_numpy(arrays["input_ids"]),
                  torch.from_numpy(arrays["attention_mask"])), torch.from_numpy(labels),
        c.distill_epochs, c.batch_size, c.lr, cfg.seed, teacher_logits=teacher_logits,
        temperature=c.temperature, alpha=c.alpha)
    return NeuralTextPredictor(student, teacher.tokenizer_file, teacher.class_names)


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
        student = distilled_student(cfg, teacher)
        student_bundle = build_bundle(exportable_predictor(student), sample,
                                      scratch / "student", False, identity)
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
            table.Variant("student", f"distilled {type(student.network).__name__} student "
                                     "(ONNX fp32)", student_bundle.model_file("onnx")),
        ], inputs, labels, single, batch)
        folder = save_network(student.network, scratch / "student-network")
        table.write(cfg, result, [(folder, "compression/student"),
                                  (base.model_file("int8"), "compression")])
    return result


def summarize(cfg: DictConfig, result: dict) -> str:
    return result["skipped"] if "skipped" in result else table.summarize(cfg, result)
