"""How much noise DP-SGD needs and what it proves: the noise multiplier that reaches a target ε
within the planned steps, and ε after the steps taken (Opacus' accountants). No torch, no
Lightning: the report and config checks use it too."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from omegaconf import DictConfig

from forgeml.errors import ConfigError
from forgeml.schemas import privacy_settings_problems


@dataclass(frozen=True)
class PrivacyPlan:
    """One DP-SGD training run's settings, as logged and reported."""

    target_epsilon: float  # inf when the noise multiplier was given instead
    delta: float
    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float  # each example is in a batch with this probability (Poisson)
    expected_batch_size: int
    steps_per_epoch: int
    planned_epochs: int
    accountant: str
    training_examples: int

    def as_params(self) -> dict[str, float | int | str]:
        return {f"privacy.plan.{k}": v for k, v in asdict(self).items()}


def sampling(n_examples: int, batch_size: int) -> tuple[float, int]:
    """The sample rate the accountant counts and the steps per epoch of Opacus' Poisson loader
    made from a plain loader of this batch size. The loader samples at 1/batches but runs
    int(1/(1/batches)) steps, which float rounding makes one less for some sizes (93, 99, ...);
    Opacus then accounts 1/steps, slightly above the true rate: a conservative ε."""
    batches = math.ceil(n_examples / batch_size)
    steps = int(1 / (1 / batches))
    return 1.0 / steps, steps


def plan(privacy: DictConfig, n_examples: int, batch_size: int, epochs: int) -> PrivacyPlan:
    """The noise for `privacy.target_epsilon` at δ after `epochs` epochs (or the given
    `privacy.noise_multiplier`). Raises ConfigError for settings that prove nothing."""
    from opacus.accountants.utils import get_noise_multiplier

    check(privacy, n_examples)
    delta = privacy.delta if privacy.delta is not None else 1.0 / n_examples
    rate, steps = sampling(n_examples, batch_size)
    if privacy.noise_multiplier is not None:
        sigma, target = float(privacy.noise_multiplier), math.inf
    else:
        target = float(privacy.target_epsilon)
        try:
            sigma = get_noise_multiplier(target_epsilon=target, target_delta=delta,
                                         sample_rate=rate, steps=steps * epochs,
                                         accountant=privacy.accountant)
        except ValueError as err:
            raise ConfigError(f"privacy.target_epsilon={target} cannot be reached in {epochs} "
                              f"epochs at this sample rate ({err}); raise the target or train "
                              "fewer epochs.") from None
    return PrivacyPlan(target, delta, sigma, float(privacy.max_grad_norm), rate,
                       max(1, round(n_examples * rate)), steps, epochs, privacy.accountant,
                       n_examples)


def check(privacy: DictConfig, n_examples: int) -> None:
    """The settings' problems that need the number of training examples (δ against 1/N)."""
    problems = privacy_settings_problems(privacy)
    if privacy.delta is not None and privacy.delta >= 1.0 / n_examples:
        problems.append(f"privacy.delta={privacy.delta} must be below 1/N = "
                        f"{1.0 / n_examples:.2g} for {n_examples:,} training examples: a larger δ "
                        "allows leaking whole examples (leave it null for 1/N)")
    if problems:
        raise ConfigError("; ".join(problems))


def epsilon_of(history: list, delta: float, accountant: str) -> float:
    """ε spent by the steps in an accountant's history [(noise, sample rate, steps)]."""
    from opacus.accountants import create_accountant

    if not history:
        return 0.0
    counted = create_accountant(mechanism=accountant)
    counted.history = [tuple(entry) for entry in history]
    return float(counted.get_epsilon(delta=delta))
