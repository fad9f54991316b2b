"""Structured pruning with torch-pruning: whole conv channels, hidden units, attention heads and
feed-forward units with the smallest L1 norm are removed (the layers really shrink, unlike
`torch.nn.utils.prune`'s masks), then the network is rebuilt from ForgeML's registry at its new
size, so it saves and loads like any other."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from forgeml.errors import ConfigError
from forgeml.models import registry


@dataclass(frozen=True)
class Plan:
    """What may shrink in one kind of network, and its constructor arguments once it has."""

    sizes: Callable[[nn.Module], dict[str, Any]]
    kept: Callable[[nn.Module], list[nn.Module]] = lambda m: []  # layers whose outputs stay
    heads: Callable[[nn.Module], dict[nn.Module, int]] = lambda m: {}  # q/k/v -> heads
    options: dict[str, Any] = field(default_factory=dict)


def _bert_layers(m: nn.Module) -> list[nn.Module]:
    return list(m.encoder.encoder.layer)


# The residual width (embeddings, LayerNorms, each block's output) stays as trained: only whole
# attention heads and feed-forward units go, so the layers keep reading the same hidden states.
MINILM = Plan(
    sizes=lambda m: {"attention_heads": _bert_layers(m)[0].attention.self.query.out_features
                     // _bert_layers(m)[0].attention.self.attention_head_size,
                     "encoder_config": {**m.encoder.config.to_diff_dict(), "intermediate_size":
                                        _bert_layers(m)[0].intermediate.dense.out_features}},
    kept=lambda m: [m.encoder.embeddings] + [x for layer in _bert_layers(m) for x in
                                             (layer.attention.output.dense, layer.output.dense)],
    heads=lambda m: {getattr(layer.attention.self, name): layer.attention.self.num_attention_heads
                     for layer in _bert_layers(m) for name in ("query", "key", "value")},
    options={"prune_num_heads": True, "prune_head_dims": False})

PLANS: dict[str, Plan] = {
    "forgeml.models.cnn.CNN": Plan(lambda m: {"channels": m.features[0].out_channels,
                                              "hidden": m.head[1].out_features}),
    "forgeml.models.mlp.MLP": Plan(lambda m: {"hidden": m.layers[1].out_features}),
    "forgeml.models.minilm_classifier.MiniLMClassifier": MINILM,
}


def prune(model: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...],
          amount: float) -> nn.Module:
    """A copy of `model` with `amount` of its prunable channels / units / heads removed (the
    output layer keeps every class)."""
    import torch_pruning as tp

    spec = registry.spec_of(model)
    if spec["target"] not in PLANS:
        raise ConfigError(f"Structured pruning supports {', '.join(PLANS)}; "
                          f"{spec['target']} is not one of them.")
    plan = PLANS[spec["target"]]
    pruned = copy.deepcopy(model).eval()
    output = [m for m in pruned.modules() if isinstance(m, nn.Linear)][-1]
    heads = plan.heads(pruned)
    tp.pruner.MetaPruner(
        pruned, example, importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=amount, ignored_layers=[output, *plan.kept(pruned)],
        **({"num_heads": heads, "head_pruning_ratio": amount} if heads else {}),
        **plan.options).step()
    rebuilt = registry.build({**spec, "kwargs": {**spec["kwargs"], **plan.sizes(pruned)}})
    rebuilt.load_state_dict(pruned.state_dict(), strict=True)
    return rebuilt
