"""The compute multiplier (docs/method.md §6.2, arXiv 2511.04234): how many more training steps retrieval is worth.

For a checkpoint at step s whose retrieval-augmented accuracy is A, the equivalent step s* is where the
run's baseline curve accuracy(steps) (no retrieval) first reaches A, interpolated linearly in log(step)
between the last evaluation below A and the first at or above it; multiplier = s*/s. When A exceeds every
baseline value the equivalent step is beyond the run: s* is reported as the run's last step and the
multiplier as a lower bound ("beyond"). When A is at or below the first evaluation (step > 0) it is an upper
bound ("below"). Step 0 has no log and no multiplier.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STATUSES = ("within", "beyond", "below")


@dataclass(frozen=True)
class Multiplier:
    step: int
    accuracy: float
    equivalent_step: float
    multiplier: float  # nan at step 0
    status: str  # within | beyond (a lower bound) | below (an upper bound)


def _baseline(steps, accuracy) -> tuple[np.ndarray, np.ndarray]:
    steps, accuracy = np.asarray(steps, dtype=np.float64), np.asarray(accuracy, dtype=np.float64)
    if steps.shape != accuracy.shape or steps.ndim != 1:
        raise ValueError("baseline: steps and accuracy must be 1-d arrays of the same length")
    keep = (steps > 0) & np.isfinite(accuracy)
    steps, accuracy = steps[keep], accuracy[keep]
    if len(steps) == 0:
        raise ValueError("baseline: no evaluation at a step > 0: allowed a curve with at least one")
    order = np.argsort(steps, kind="stable")
    return steps[order], accuracy[order]


def equivalent_step(steps, accuracy, target: float) -> tuple[float, str]:
    """(s*, status) for accuracy `target` on the baseline curve (module docstring)."""
    s, acc = _baseline(steps, accuracy)
    if target <= acc[0]:
        return float(s[0]), "below"
    reached = np.nonzero(acc >= target)[0]
    if len(reached) == 0:
        return float(s[-1]), "beyond"
    j = int(reached[0])  # first at or above; j >= 1 since acc[0] < target
    lo, hi = np.log(s[j - 1]), np.log(s[j])
    frac = (target - acc[j - 1]) / (acc[j] - acc[j - 1])
    return float(np.exp(lo + frac * (hi - lo))), "within"


def compute_multiplier(steps, accuracy, step: int, target: float) -> Multiplier:
    """The multiplier of a checkpoint at `step` whose retrieval accuracy is `target`."""
    if step < 0:
        raise ValueError(f"step={step} is out of range: allowed >= 0")
    s_star, status = equivalent_step(steps, accuracy, target)
    return Multiplier(int(step), float(target), s_star, s_star / step if step > 0 else float("nan"), status)


def multiplier_interval(steps, accuracy, step: int, targets, level: float = 0.95) -> tuple[float, float]:
    """A percentile interval of the multiplier over resampled accuracies `targets` (e.g. a bootstrap
    over evaluation biographies); bounds from 'beyond' / 'below' samples are the bounds themselves."""
    if step <= 0:
        return float("nan"), float("nan")
    values = [equivalent_step(steps, accuracy, t)[0] / step for t in np.asarray(targets, dtype=np.float64)]
    q = (1 - level) / 2
    return float(np.quantile(values, q)), float(np.quantile(values, 1 - q))
