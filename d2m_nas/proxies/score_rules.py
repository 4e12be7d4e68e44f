"""Score rules: the numbers one training run is reduced to, all from the run's recorded trace.

A training-based proxy records a trace, not a score: the training loss of every step and, at a
few checkpoints, the validation accuracy and loss and the seconds spent so far. Every rule below
is a pure function of that trace, at the end of the run or at any checkpoint (a cheaper fidelity
of the same run), so a rule can be chosen, added or compared without training again. Every rule
is oriented so that **higher is better**: losses enter with a minus sign.

    val_acc   top-1 accuracy (%) on the validation split
    val_loss  − mean validation cross-entropy
    tse       − mean training loss over all steps so far (Ru et al., NeurIPS 2021, "TSE": the sum
              of training losses; a mean ranks identically at a fixed step count)
    tse_e     − mean training loss over the most recent quarter of the steps ("TSE-E": Ru et al.
              sum the last epoch; a quarter is defined for streams too, where no epoch exists)
    tse_ema   − exponential moving average of the training losses, span = that quarter
              ("TSE-EMA"; weights (1 − α)^age with α = 2 / (span + 1))

A NaN loss (a diverged candidate) makes the loss-based rules NaN: reports drop such pairs and say
how many.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from d2m_nas.errors import UserError

RULES = {
    "val_acc": "validation top-1 accuracy (%)",
    "val_loss": "minus the validation cross-entropy",
    "tse": "minus the mean training loss over all steps (TSE)",
    "tse_e": "minus the mean training loss over the last quarter of the steps (TSE-E)",
    "tse_ema": "minus the exponential moving average of the training losses, span a quarter of the steps (TSE-EMA)",
}
DEFAULT_RULE = "val_acc"
VALIDATION_RULES = ("val_acc", "val_loss")  # need a validation pass at the step they are read at
WINDOW_FRACTION = 0.25


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise UserError(f"unknown score rule {rule!r}; choose from {', '.join(RULES)}")
    return rule


def window(steps: int) -> int:
    """The TSE-E window and TSE-EMA span for a run of `steps` steps (at least one step)."""
    return max(1, int(round(steps * WINDOW_FRACTION)))


def training_rules(losses: Sequence[float]) -> dict[str, float]:
    """tse, tse_e and tse_ema of a loss trace (one loss per step, oldest first)."""
    values = np.asarray(losses, dtype=float)
    if len(values) == 0:
        return {"tse": math.nan, "tse_e": math.nan, "tse_ema": math.nan}
    span = window(len(values))
    alpha = 2.0 / (span + 1.0)
    weights = (1.0 - alpha) ** np.arange(len(values) - 1, -1, -1)
    return {"tse": -float(values.mean()), "tse_e": -float(values[-span:].mean()),
            "tse_ema": -float((weights * values).sum() / weights.sum())}


def checkpoint_rules(trace: dict[str, Any], checkpoint: dict[str, Any]) -> dict[str, float]:
    """Every rule at one checkpoint of a trace (the run cut off at `checkpoint['step']`)."""
    step = int(checkpoint["step"])
    return ({"val_acc": float(checkpoint["val_acc"]), "val_loss": -float(checkpoint["val_loss"])}
            | training_rules(trace["train_losses"][:step]))


def final_rules(trace: dict[str, Any]) -> dict[str, float]:
    """Every rule at the end of the run (its last checkpoint is the last step)."""
    return checkpoint_rules(trace, trace["checkpoints"][-1])


def fidelities(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per checkpoint: the step, every rule there, and what reaching it cost: the
    training seconds up to it plus, for the validation rules, that one validation pass."""
    out = []
    for checkpoint in trace["checkpoints"]:
        rules = checkpoint_rules(trace, checkpoint)
        out.append({"step": int(checkpoint["step"]), "rules": rules,
                    "train_seconds": float(checkpoint["train_seconds"]),
                    "eval_seconds": float(checkpoint["eval_seconds"])})
    return out
