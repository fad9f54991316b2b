"""The exported text classifier: WordPiece ids and attention mask in (`input_ids`,
`attention_mask`, batch x tokens), class probabilities out; the tokenizer travels with it.
Neural models only: the TF-IDF baseline is a scikit-learn pipeline and stays a skops file."""

from __future__ import annotations

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from forgeml.serving.export import Exportable


class Probabilities(nn.Module):
    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.network(input_ids, attention_mask).softmax(-1)


def exportable(uri: str, run_id: str) -> Exportable:
    from forgeml.errors import ConfigError
    from forgeml.tasks.sentiment.predictor import NeuralTextPredictor, load_logged

    predictor = load_logged(uri, run_id)
    if not isinstance(predictor, NeuralTextPredictor):
        raise ConfigError(f"Run {run_id}'s model is a scikit-learn pipeline; ONNX export is for "
                          "neural text models (MiniLM, TextCNN); `forgeml predict --text` "
                          "answers from its skops file.")
    return exportable_predictor(predictor)


def exportable_predictor(predictor) -> Exportable:
    """A NeuralTextPredictor's network with softmax, and its tokenizer."""
    axes = {0: "batch", 1: "tokens"}
    return Exportable(
        module=Probabilities(predictor.network), input_names=["input_ids", "attention_mask"],
        output_name="probabilities", dynamic_axes={"input_ids": axes, "attention_mask": axes},
        meta={"class_names": predictor.class_names,
              "max_length": int(predictor.network.max_length), "pad_id": 0},
        files={"tokenizer.json": predictor.tokenizer_file})


def test_inputs(cfg: DictConfig, count: int) -> dict[str, np.ndarray]:
    from forgeml.data.text_batches import encode, load_tokenizer, pad, read_split
    from forgeml.tasks.sentiment.train import tokenizer_file

    texts, _ = read_split(cfg.paths.prepared, "test")
    ids, mask = pad(encode(load_tokenizer(tokenizer_file(cfg), cfg.model.max_length),
                           texts[:count]))
    return {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
