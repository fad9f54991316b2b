"""Compose configs from conf/ (Hydra), write and read params.yaml, validate, instantiate."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from forgeml.errors import ConfigError
from forgeml.io import atomic_write_text

DEFAULT_PARAMS = "params.yaml"


# --- composing ----------------------------------------------------------------------------------
def find_config_dir(start: Path | None = None) -> Path:
    """The nearest conf/ (with config.yaml) at or above `start`."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "conf" / "config.yaml").is_file():
            return folder / "conf"
    raise ConfigError(f"No conf/config.yaml found in {here} or any parent folder.")


def compose(overrides: list[str] | None = None, config_dir: Path | None = None) -> DictConfig:
    """Compose conf/ with Hydra overrides, exactly as `dvc exp run -S` does (not yet validated:
    its task's schema does that, `forgeml.tasks.compose`)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    config_dir = Path(config_dir) if config_dir else find_config_dir()
    try:
        with initialize_config_dir(config_dir=str(config_dir.resolve()), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=list(overrides or []))
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(f"Cannot compose conf/ with overrides {overrides or []}: {err}") from None
    OmegaConf.resolve(cfg)
    return cfg


def write_params(cfg: DictConfig, path: str | Path = DEFAULT_PARAMS) -> Path:
    text = yaml.safe_dump(OmegaConf.to_container(cfg, resolve=True), sort_keys=False)
    return atomic_write_text(path, text)


def read_params(path: str | Path = DEFAULT_PARAMS) -> DictConfig:
    """Read a composed params file (what `dvc repro` stages see); its task's schema validates
    it (`forgeml.tasks.load_params`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{path} not found. Compose it from conf/ with `forgeml compose` (or `dvc exp run`)."
        )
    try:
        cfg = OmegaConf.load(path)
    except (yaml.YAMLError, OmegaConfBaseException) as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path} must hold a mapping of config sections.")
    return cfg


def validate(cfg: DictConfig, schema: type, problems: Callable[[DictConfig], list[str]],
             source: str = DEFAULT_PARAMS) -> None:
    """`cfg` against a structured `schema` (dataclass), then the checks of its values
    (`problems`: one line each); the first failure names the full key and the fix."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), cfg)
        OmegaConf.to_container(merged, throw_on_missing=True)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        reason = str(err).splitlines()[0]
        raise ConfigError(
            f"{source}: invalid config key '{key}': {reason}. "
            "Fix it in conf/ (or the -S override) and recompose."
        ) from None
    found = problems(cfg)
    if found:
        raise ConfigError(f"{source}: " + "; ".join(found) + ".")


def instantiate(node: DictConfig, what: str, **kwargs: Any) -> Any:
    """hydra.utils.instantiate with an error that names the config section."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    try:
        return hydra_instantiate(node, **kwargs)
    except InstantiationException as err:
        raise ConfigError(f"Cannot build '{what}' from its config: {err}") from None


def flatten(cfg: DictConfig) -> dict[str, Any]:
    """The config as dotted keys, for MLflow params."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = node

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


def config_hash(cfg: DictConfig) -> str:
    payload = json.dumps(OmegaConf.to_container(cfg, resolve=True), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
