"""The compute multiplier (docs/method.md §6.2): how many more training steps retrieval is worth.

For a checkpoint at step s whose retrieval-augmented accuracy is A, the equivalent step s* is where the
run's baseline curve accuracy(steps) (no retrieval) first reaches A, interpolated linearly in log(step)
between the last evaluation below A and the first at or above it; multiplier = s*/s. When A exceeds every
baseline value the equivalent step is beyond the baseline run: the multiplier is not a number (NaN) and `bound`
holds its lower bound, the baseline's last step / s ("beyond"); a baseline run longer than the study's run (same
config, more steps: `RetrievalConfig.baseline_run`) moves that cap. When A is at or below the first evaluation
(step > 0) the multiplier is NaN with an upper bound ("below"). A capped value is never reported as the multiplier.
Step 0 has no log and no multiplier.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STATUSES = ("within", "beyond", "below")


@dataclass(frozen=True)
class Multiplier:
    step: int
    accuracy: float
    equivalent_step: float  # nan unless within the baseline curve
    multiplier: float  # s*/s; nan at step 0 and unless within
    bound: float  # beyond: the lower bound (baseline's last step / s); below: the upper bound; else nan
    status: str  # within | beyond | below


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
    ratio = s_star / step if step > 0 else float("nan")
    if status == "within":
        return Multiplier(int(step), float(target), s_star, ratio, float("nan"), status)
    return Multiplier(int(step), float(target), float("nan"), float("nan"), ratio, status)


def multiplier_interval(steps, accuracy, step: int, targets, level: float = 0.95) -> tuple[float, float]:
    """A percentile interval of the multiplier over resampled accuracies `targets` (e.g. a bootstrap over evaluation
    biographies). A sample beyond the baseline counts as +inf and one below it as 0 (its value is unknown past the
    bound), so an end the bound decides is inf or 0, never the capped number."""
    if step <= 0:
        return float("nan"), float("nan")
    values = []
    for t in np.asarray(targets, dtype=np.float64):
        s_star, status = equivalent_step(steps, accuracy, t)
        values.append(s_star / step if status == "within" else np.inf if status == "beyond" else 0.0)
    q = (1 - level) / 2
    return _quantile(values, q), _quantile(values, 1 - q)


def _quantile(values, q: float) -> float:
    """np.quantile's linear interpolation, with +inf where the interpolation touches an infinite sample."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    pos = q * (len(v) - 1)
    lo, hi = int(np.floor(pos)), int(np.ceil(pos))
    if np.isinf(v[hi]) and (hi != lo or np.isinf(v[lo])):
        return float("inf")
    return float(v[lo] + (pos - lo) * (v[hi] - v[lo])) if hi != lo else float(v[lo])
