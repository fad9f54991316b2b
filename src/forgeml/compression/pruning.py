"""Structured pruning with torch-pruning: whole conv channels and hidden units with the smallest
L1 norm are removed (the layers really shrink, unlike `torch.nn.utils.prune`'s masks), then the
network is rebuilt from ForgeML's registry at its new size, so it saves and loads like any
other."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from forgeml.errors import ConfigError
from forgeml.models import registry

# The constructor arguments that change when a network of each kind is pruned.
SIZES: dict[str, Callable[[nn.Module], dict[str, int]]] = {
    "forgeml.models.cnn.CNN": lambda m: {"channels": m.features[0].out_channels,
                                         "hidden": m.head[1].out_features},
    "forgeml.models.mlp.MLP": lambda m: {"hidden": m.layers[1].out_features},
}


def prune(model: nn.Module, example: torch.Tensor, amount: float) -> nn.Module:
    """A copy of `model` with `amount` of its prunable channels / units removed (the output
    layer keeps every class)."""
    import torch_pruning as tp

    spec = registry.spec_of(model)
    if spec["target"] not in SIZES:
        raise ConfigError(f"Structured pruning supports {', '.join(SIZES)}; "
                          f"{spec['target']} is not one of them.")
    pruned = copy.deepcopy(model).eval()
    output = [m for m in pruned.modules() if isinstance(m, nn.Linear)][-1]
    tp.pruner.MetaPruner(pruned, example, importance=tp.importance.MagnitudeImportance(p=1),
                         pruning_ratio=amount, ignored_layers=[output]).step()
    sizes = SIZES[spec["target"]](pruned)
    rebuilt = registry.build({**spec, "kwargs": {**spec["kwargs"], **sizes}})
    rebuilt.load_state_dict(pruned.state_dict(), strict=True)
    return rebuilt
