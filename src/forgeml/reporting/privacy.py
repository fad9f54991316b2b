"""The report section "What does the model reveal about its training data?": the run's (ε, δ)
guarantee in plain words when it was trained with DP-SGD, and the membership-inference check
that every run gets."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Unit:
    """What one protected example is, in the report's words."""

    example: str  # "example", "interaction"
    examples: str
    whose: str  # "someone's example"
    scope: str  # what else the reader must know about what is covered


IMAGES = Unit(
    "example", "examples", "someone's example",
    "For the same reason the compress stage offers only variants made without the training "
    "data (ONNX, int8): pruning and distillation would retrain on it without DP-SGD.")
INTERACTIONS = Unit(
    "interaction", "interactions", "one user's interaction with one item",
    "The unit protected is one interaction, not a whole user: a user with n interactions in "
    "training is covered only at about n·ε, so a heavy user's tastes can still show. Under "
    "DP-SGD the training negatives are drawn from all items (a user's own other items "
    "included), so that each example depends on its own interaction only.")


def section(run: dict, result: dict, level: str, unit: Unit = IMAGES) -> dict | None:
    """Words for the run record (train summary) and the evaluation; None when neither has
    anything on privacy."""
    attack = result.get("membership")
    if "privacy_epsilon" not in run and not attack:
        return None
    return {"guarantee": guarantee(run, unit), "attack": attack_sentence(attack, level, unit),
            "rows": rows(run, attack, level)}


def verdict_sentence(run: dict, unit: Unit) -> str:
    return (f"It was trained with differential privacy (ε = {run['privacy_epsilon']:.2f}, "
            f"δ = {run['privacy_delta']:.0e}): no single training {unit.example} can change it "
            "much; the privacy section below says what that protects.")


def guarantee(run: dict, unit: Unit = IMAGES) -> str:
    if "privacy_epsilon" not in run:
        return ("This model was trained without differential privacy: nothing bounds what it "
                f"can reveal about any one training {unit.example} (train with `privacy=dp` "
                "for a guarantee).")
    eps, delta = run["privacy_epsilon"], run["privacy_delta"]
    factor, sure = math.exp(eps), math.exp(eps) / (1 + math.exp(eps))
    return (
        f"This model was trained with differential privacy (DP-SGD): ε = {eps:.2f}, δ = "
        f"{delta:.1e}. In plain words: for any one training {unit.example}, everything that can "
        f"be learned from the model is at most {factor:,.1f} times more or less likely whether "
        f"it was in the training data or not (ε), except with a chance of {delta:.1e} (δ). An "
        f"attacker who holds the model, and even every other training {unit.example}, and was "
        f"50/50 on whether {unit.whose} was used, can be at most {sure:.0%} sure afterwards; "
        f"they cannot reliably recover that {unit.example} either. What the guarantee does not "
        "hide is what is true of many people: the model still learns the patterns it was "
        "trained for, and facts about groups a person belongs to. It covers the training split "
        f"only; the validation and test {unit.examples} used to pick and score the model are "
        f"not protected. {unit.scope}")


def attack_sentence(attack: dict | None, level: str, unit: Unit = IMAGES) -> str:
    if not attack:
        return ""
    low, high = attack["auc_ci"]
    verdict = ("no better than guessing" if low <= 0.5 <= high else
               "better than guessing: the model leaks which examples it was trained on"
               if low > 0.5 else "worse than guessing")
    return (f"A {attack['attack']} attack, which guesses that {unit.examples} with low loss were "
            f"in the training data, tells {attack['members']:,} training {unit.examples} from "
            f"{attack['non_members']:,} held-out ones with AUC {attack['auc']:.3f} ({level} "
            f"interval {low:.3f} to {high:.3f}; 0.5 is guessing): {verdict}. Its best threshold "
            f"is right about members {attack['advantage']:.1%} more often than it is wrong "
            "about non-members.")


def rows(run: dict, attack: dict | None, level: str) -> list[tuple[str, str]]:
    out = []
    if "privacy_epsilon" in run:
        out += [("ε (privacy budget spent)", f"{run['privacy_epsilon']:.2f}"),
                ("δ", f"{run['privacy_delta']:.1e}"),
                ("Noise multiplier", f"{run['privacy_noise_multiplier']:.3f}"),
                ("Per-example gradient clip (L2)", f"{run['privacy_max_grad_norm']:g}"),
                ("Poisson sample rate", f"{run['privacy_sample_rate']:.4f}"),
                ("Private optimizer steps", f"{run['privacy_steps']:,}")]
    if attack:
        low, high = attack["auc_ci"]
        out.append((f"Membership attack AUC ({level} interval)",
                    f"{attack['auc']:.3f} ({low:.3f} to {high:.3f})"))
    return out
