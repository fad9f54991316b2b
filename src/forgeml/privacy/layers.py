"""Layers DP-SGD can train: Opacus' ModuleValidator, run when a network is built for private
training, refuses layers that mix examples in a batch (BatchNorm) or lack per-example gradients,
and names the fix."""

from __future__ import annotations

from torch import nn

from forgeml.errors import ConfigError


def private_network(network: nn.Module, fix_layers: bool) -> nn.Module:
    """`network` if DP-SGD can train it; with `fix_layers`, Opacus' replacements (BatchNorm ->
    GroupNorm, LSTM -> DPLSTM, MultiheadAttention -> DPMultiheadAttention); else ConfigError."""
    from opacus.validators import ModuleValidator

    problems = ModuleValidator.validate(network, strict=False)
    if not problems:
        return network
    if fix_layers:
        fixed = ModuleValidator.fix(network)
        left = ModuleValidator.validate(fixed, strict=False)
        if left:
            raise ConfigError("DP-SGD cannot train this network even with Opacus' layer "
                              f"replacements: {_describe(left)}.")
        return fixed
    raise ConfigError(
        f"DP-SGD cannot train this network as it is: {_describe(problems)}. Set "
        "privacy.fix_layers=true to replace them with Opacus' private equivalents (BatchNorm -> "
        "GroupNorm, LSTM -> DPLSTM, MultiheadAttention -> DPMultiheadAttention), or choose a "
        "model without them.")


def _describe(problems: list) -> str:
    return "; ".join(str(p).strip().splitlines()[0] for p in problems[:5])
