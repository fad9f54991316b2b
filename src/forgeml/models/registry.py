"""The networks ForgeML may build, by name. A saved model names its network and gives plain
constructor arguments; the class is looked up here, never imported by a name read from a file,
so a model file from a shared store cannot make ForgeML run code it does not ship."""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from forgeml.errors import ModelFileError

# name -> (module, class): fixed strings, imported only when that network is built.
NETWORKS: dict[str, tuple[str, str]] = {
    f"{module}.{name}": (module, name) for module, name in [
        ("forgeml.models.mlp", "MLP"),
        ("forgeml.models.cnn", "CNN"),
        ("forgeml.models.classifier", "NormalizedNetwork"),
        ("forgeml.models.gpt", "GPT"),
        ("forgeml.models.gmf", "GMF"),
        ("forgeml.models.ncf_mlp", "NCFMLP"),
        ("forgeml.models.neumf", "NeuMF"),
        ("forgeml.models.textcnn", "TextCNN"),
        ("forgeml.models.minilm_classifier", "MiniLMClassifier"),
        ("forgeml.models.dcgan", "DCGANGenerator"),
        ("forgeml.models.dcgan", "DCGANDiscriminator"),
        ("forgeml.models.mae", "ViTClassifier"),
    ]
}


def network_class(target: str) -> type[nn.Module]:
    if target not in NETWORKS:
        raise ModelFileError(f"'{target}' is not a network ForgeML ships (known: "
                             f"{', '.join(sorted(NETWORKS))}).")
    module, name = NETWORKS[target]
    return getattr(importlib.import_module(module), name)


def name_of(network: nn.Module) -> str:
    cls = type(network)
    target = f"{cls.__module__}.{cls.__qualname__}"
    if target not in NETWORKS:
        raise ModelFileError(f"{target} is not in forgeml.models.registry.NETWORKS: register it "
                             "there so that saved models can name it.")
    return target


def spec_of(network: nn.Module) -> dict[str, Any]:
    """{"target", "kwargs"}: enough to rebuild `network` (its weights aside). A network records
    its constructor arguments as `spec` (set by the class, or by `remember_spec`)."""
    spec = getattr(network, "spec", None)
    if not isinstance(spec, dict):
        raise ModelFileError(f"{type(network).__name__} has no `spec` (its constructor "
                             "arguments), so it cannot be saved in ForgeML's model format.")
    return {"target": name_of(network), "kwargs": spec}


def remember_spec(network: nn.Module, kwargs: dict[str, Any]) -> nn.Module:
    """Record the plain arguments `network` was built with (for classes that do not)."""
    if not isinstance(getattr(network, "spec", None), dict):
        network.spec = dict(kwargs)
    return network


def instantiate_network(node, **kwargs: Any) -> Any:
    """The configured model (Hydra `_target_`); an nn.Module also records the plain arguments
    it was built with, so that it can be saved and rebuilt from this registry alone."""
    from omegaconf import OmegaConf

    from forgeml.config import instantiate

    built = instantiate(node, "model", **kwargs)
    if isinstance(built, nn.Module):
        arguments = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items()
                     if not k.startswith("_")}
        remember_spec(built, {**arguments, **kwargs})
    return built


def build(spec: dict[str, Any]) -> nn.Module:
    """The network a spec describes, from the registry, with random weights."""
    kwargs = spec.get("kwargs")
    if not isinstance(kwargs, dict):
        raise ModelFileError("the network spec has no constructor arguments ('kwargs').")
    try:
        network = network_class(str(spec.get("target")))(**kwargs)
    except (TypeError, ValueError, KeyError) as err:
        raise ModelFileError(f"cannot rebuild {spec.get('target')} from its saved arguments "
                             f"({err}).") from None
    return remember_spec(network, kwargs)
