"""How much noise DP-SGD needs: the noise multiplier that reaches a target ε at δ within the
planned steps (Opacus' accountants), and the checks that need the number of training examples.
No torch, no Lightning."""

from __future__ import annotations

import math
from dataclasses import dataclass

from omegaconf import DictConfig

from forgeml.errors import ConfigError
from forgeml.schemas import privacy_settings_problems


@dataclass(frozen=True)
class PrivacyPlan:
    """One DP-SGD training run's settings, as trained with, logged and reported."""

    delta: float
    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float  # each example is in a batch with this probability (Poisson)
    steps_per_epoch: int
    accountant: str


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
        sigma = float(privacy.noise_multiplier)
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
    return PrivacyPlan(delta, sigma, float(privacy.max_grad_norm), rate, steps,
                       privacy.accountant)


def check(privacy: DictConfig, n_examples: int) -> None:
    """The settings' problems that need the number of training examples (δ against 1/N)."""
    problems = privacy_settings_problems(privacy)
    if privacy.delta is not None and privacy.delta >= 1.0 / n_examples:
        problems.append(f"privacy.delta={privacy.delta} must be below 1/N = "
                        f"{1.0 / n_examples:.2g} for {n_examples:,} training examples: a larger δ "
                        "allows leaking whole examples (leave it null for 1/N)")
    if problems:
        raise ConfigError("; ".join(problems))
