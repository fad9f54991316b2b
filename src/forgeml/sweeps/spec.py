"""What a sweep is (conf/sweep/<name>.yaml): the experiment to start from, the search space, the
objective and the study's settings, checked before any trial runs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from forgeml.credentials import has_password
from forgeml.errors import ConfigError

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "none")
# What prepare reads: a trial may not change it (the prepared data is shared by all trials).
PREPARE_KEYS = ("data.",)
TRAIN_TIME_DATA_KEYS = ("data.augment.",)


@dataclass(frozen=True)
class Param:
    key: str  # a dotted config key, or a group name (no dot)
    kind: str  # float | int | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()
    default: Any = None  # the base experiment's value (read from it for keys)

    @property
    def is_group(self) -> bool:
        return "." not in self.key

    def override(self, value: Any) -> str:
        return f"{self.key}={value}"


@dataclass(frozen=True)
class SweepSpec:
    name: str
    experiment: str
    overrides: tuple[str, ...]
    metric: str
    direction: str
    space: tuple[Param, ...]
    n_trials: int
    timeout_s: float | None
    sampler: dict = field(default_factory=dict)
    pruner: dict = field(default_factory=dict)
    storage: str | None = None

    def base_overrides(self) -> list[str]:
        return [f"experiment={self.experiment}", *self.overrides]

    def trial_overrides(self, values: dict[str, Any]) -> list[str]:
        return self.base_overrides() + [p.override(values[p.key]) for p in self.space]

    @property
    def history_key(self) -> str:
        """The objective's column in a task's per-epoch history (val/acc -> val_acc)."""
        return self.metric.replace("/", "_")


def load_spec(name: str, conf_dir: Path) -> SweepSpec:
    path = conf_dir / "sweep" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (conf_dir / "sweep").glob("*.yaml"))
        raise ConfigError(f"No sweep '{name}': {path} does not exist (known: "
                          f"{', '.join(known) or 'none'}).")
    raw = OmegaConf.load(path)
    where = f"{path.name}"
    try:
        objective = raw.objective
        spec = SweepSpec(
            name=name, experiment=str(raw.experiment),
            overrides=tuple(str(o) for o in raw.get("overrides") or ()),
            metric=str(objective.metric), direction=str(objective.direction),
            space=tuple(_param(key, node, where) for key, node in raw.space.items()),
            n_trials=int(raw.n_trials), timeout_s=raw.get("timeout_s"),
            sampler=OmegaConf.to_container(raw.get("sampler") or {"name": "tpe"}),
            pruner=OmegaConf.to_container(raw.get("pruner") or {"name": "none"}),
            storage=raw.get("storage"))
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None
    problems = []
    if not spec.metric.startswith("val/"):
        problems.append(f"objective.metric '{spec.metric}' must be a validation metric "
                        "(val/...): tuning on the test split would leave no honest test")
    if spec.direction not in ("maximize", "minimize"):
        problems.append("objective.direction must be 'maximize' or 'minimize'")
    if spec.storage and has_password(str(spec.storage)):
        problems.append("storage carries a password, which this tracked file would keep: put "
                        "it in the environment (e.g. PGPASSWORD, or $VAR in the URL, expanded "
                        "when the sweep runs)")
    if spec.n_trials < 1:
        problems.append("n_trials must be >= 1")
    if spec.sampler.get("name") not in SAMPLERS:
        problems.append(f"sampler.name must be one of {', '.join(SAMPLERS)}")
    if spec.pruner.get("name") not in PRUNERS:
        problems.append(f"pruner.name must be one of {', '.join(PRUNERS)}")
    if not spec.space:
        problems.append("space is empty: name at least one key to search")
    for param in spec.space:
        if param.key.startswith(PREPARE_KEYS) and not param.key.startswith(
                TRAIN_TIME_DATA_KEYS):
            problems.append(f"space.{param.key}: trials share one prepared data set, so the "
                            "space may change data.augment.* but not what prepare reads")
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems) + ".")
    return spec


def _param(key: str, node: DictConfig, where: str) -> Param:
    kind = str(node.get("type", ""))
    if kind in ("float", "int"):
        low, high = node.get("low"), node.get("high")
        if low is None or high is None or not float(low) < float(high):
            raise ConfigError(f"{where}: space.{key} needs low < high (got {low}, {high}).")
        log = bool(node.get("log", False))
        if log and float(low) <= 0:
            raise ConfigError(f"{where}: space.{key} is log-scaled, so low must be > 0.")
        return Param(key, kind, float(low), float(high), log, default=node.get("default"))
    if kind == "categorical":
        choices = tuple(node.get("choices") or ())
        if len(choices) < 2:
            raise ConfigError(f"{where}: space.{key} needs at least two choices.")
        param = Param(key, kind, choices=choices, default=node.get("default"))
        if param.is_group and param.default is None:
            raise ConfigError(f"{where}: space.{key} chooses a config group: give its `default:` "
                              "(the base experiment's choice), so trial 0 is the base.")
        return param
    raise ConfigError(f"{where}: space.{key}.type must be float, int or categorical.")


def base_values(spec: SweepSpec, cfg: DictConfig) -> dict[str, Any]:
    """The base experiment's value of every searched key (trial 0); unknown keys fail here."""
    values = {}
    for param in spec.space:
        if param.default is not None:
            values[param.key] = param.default
            continue
        value = OmegaConf.select(cfg, param.key, default=_MISSING)
        if value is _MISSING:
            raise ConfigError(f"conf/sweep/{spec.name}.yaml: space.{param.key} is not a key of "
                              f"the composed experiment '{spec.experiment}' (check the "
                              "spelling, e.g. optimizer.lr).")
        if param.kind in ("float", "int") and not (
                isinstance(value, int | float) and math.isfinite(value)):
            raise ConfigError(f"space.{param.key}: the experiment's value {value!r} is not a "
                              "number.")
        if param.kind in ("float", "int") and not param.low <= value <= param.high:
            raise ConfigError(f"conf/sweep/{spec.name}.yaml: space.{param.key} [{param.low}, "
                              f"{param.high}] does not contain the experiment's value {value}: "
                              "widen it, so that trial 0 is the experiment as it is.")
        if param.kind == "categorical" and value not in param.choices:
            raise ConfigError(f"conf/sweep/{spec.name}.yaml: space.{param.key} choices "
                              f"{list(param.choices)} do not include the experiment's value "
                              f"{value!r}: add it, so that trial 0 is the experiment as it is.")
        values[param.key] = value
    return values


_MISSING = object()
