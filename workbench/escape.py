"""Plateau-end (escape) estimators: several operational definitions of when knowledge leaves the plateau.

The study gives no definition of the plateau's end (docs/method.md §2), so a scaling exponent is only trusted when
definitions agree. Each estimator gives a step with a 95% interval from a bootstrap over the fixed evaluation set's
sequences (boundaries recomputed on each resample), on the per-sequence scores every run saves (eval_scores.npz):

    rule        the end of `phases.PlateauRule`'s plateau (its own definition and interval)
    onset       the first evaluation after the plateau's start from which the loss stays below the plateau level
                by more than its margin (1.96 standard errors of that evaluation's mean over the sequences: its
                one-sided 97.5% bound is under the level) for `sustain` evaluations: the earliest detectable departure
    accuracy10  the first step where attribute accuracy reaches 10%, interpolated linearly in log(step)

and one on checkpoints, not evaluations (`attention_half`; the sweep tables add it on request, it loads every
checkpoint): attention50, the first step where the last layer's attribute->name attention (mean over heads) has
risen halfway from its value at the first checkpoint to its last value ("half its final value" is often met at
initialisation, where near-uniform attention already gives the names that much), interpolated linearly between
checkpoints, its interval the two checkpoints around the crossing.

A value that is never reached within the run is censored: NaN, with an interval open above (inf).

    est = escape_estimates(steps, loss, correct, baseline)   # {"rule": Escape, "onset": ..., "accuracy10": ...}
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from workbench.phases import PlateauRule, plateau

ESTIMATORS = ("rule", "onset", "accuracy10")  # on the evaluations' per-sequence scores (bootstrap intervals)
CHECKPOINT_ESTIMATORS = ("attention50",)  # on checkpoints (`attention_half`)
ACCURACY_LEVEL = 0.1


@dataclass(frozen=True)
class Escape:
    estimator: str
    step: float  # nan when censored (not reached in the run) or without a plateau
    lo: float
    hi: float  # inf when more than 2.5% of resamples are censored
    censored: bool


def first_crossing(steps, values, level: float) -> float:
    """The first step at which `values` reach `level` (rising when the last value is above the first, else falling),
    interpolated linearly between the evaluations around it; the first step when already there, NaN if never."""
    step, value = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    above = value >= level if value[-1] >= value[0] else value <= level
    if not above.any():
        return math.nan
    i = int(np.argmax(above))
    if i == 0:
        return float(step[0])
    frac = (level - value[i - 1]) / (value[i] - value[i - 1])
    return float(step[i - 1] + frac * (step[i] - step[i - 1]))


def attention_half(steps, attention) -> Escape:
    """attention50 (module docstring) on a curve of the last layer's attribute->name attention at checkpoints."""
    steps, attention = np.asarray(steps, dtype=float), np.asarray(attention, dtype=float)
    step = first_crossing(steps, attention, attention[0] + 0.5 * (attention[-1] - attention[0]))
    after = int(np.searchsorted(steps, step, side="left"))
    lo = float(steps[max(after - 1, 0)]) if math.isfinite(step) else math.nan
    hi = float(steps[min(after, len(steps) - 1)]) if math.isfinite(step) else math.inf
    return Escape("attention50", step, lo, hi, not math.isfinite(step))


def accuracy_crossing(steps, accuracy, level: float = ACCURACY_LEVEL) -> float:
    """The first step where `accuracy` reaches `level`, interpolated linearly in log(step) from the evaluation
    before (the first evaluation itself when already there); nan when never reached."""
    steps, accuracy = np.asarray(steps, dtype=float), np.asarray(accuracy, dtype=float)
    reached = np.flatnonzero(accuracy >= level)
    if not len(reached):
        return math.nan
    j = int(reached[0])
    if j == 0 or steps[j - 1] <= 0:
        return float(steps[j])
    frac = (level - accuracy[j - 1]) / (accuracy[j] - accuracy[j - 1])
    return float(np.exp(np.log(steps[j - 1]) + frac * (np.log(steps[j]) - np.log(steps[j - 1]))))


def onset(steps, loss, margin, baseline: float, rule: PlateauRule = PlateauRule()) -> float:
    """The onset estimator on one mean-loss curve with a per-evaluation `margin` (module docstring)."""
    steps, loss = np.asarray(steps, dtype=float), np.asarray(loss, dtype=float)
    start, _, _, level = plateau(steps, loss, baseline, rule)
    return math.nan if math.isnan(start) else _onset(steps, loss, margin, start, level, rule.sustain)


def _onset(steps: np.ndarray, loss: np.ndarray, margin, start: float, level: float, sustain: int) -> float:
    below = loss + margin < level
    for j in range(int(np.searchsorted(steps, start, side="right")), len(loss) - sustain + 1):
        if below[j : j + sustain].all():
            return float(steps[j])
    return math.nan


def _estimates(steps, loss, correct, margin, baseline: float, rule: PlateauRule, names) -> dict[str, float] | None:
    """The estimators `names` on mean curves, from one plateau detection; None when there is no plateau."""
    start, end, _, level = plateau(steps, loss, baseline, rule)
    if math.isnan(start):
        return None
    found = {
        "rule": lambda: end,
        "onset": lambda: _onset(steps, loss, margin, start, level, rule.sustain),
        "accuracy10": lambda: accuracy_crossing(steps, correct),
    }
    return {name: found[name]() for name in names}


def escape_estimates(
    steps,
    per_sequence_loss,
    per_sequence_correct,
    baseline: float,
    rule: PlateauRule | None = None,
    n_boot: int = 200,
    seed: int = 0,
    estimators: tuple[str, ...] = ESTIMATORS,
) -> dict[str, Escape]:
    """The `estimators` (default: every one) on [n_evals, n_sequences] losses and correctness, with 95% bootstrap
    intervals, from one plateau detection per curve; all NaN when the run has no plateau."""
    rule = rule or PlateauRule()
    steps = np.asarray(steps, dtype=float)
    loss, correct = np.asarray(per_sequence_loss, dtype=float), np.asarray(per_sequence_correct, dtype=float)
    n = loss.shape[1]
    rng = np.random.default_rng(seed)
    picks = rng.integers(n, size=(n_boot, n))
    boot_loss = np.stack([loss[:, p].mean(1) for p in picks]) if n_boot else np.zeros((0, len(steps)))
    margin = 1.96 * loss.std(1, ddof=1) / math.sqrt(n)
    point = _estimates(steps, loss.mean(1), correct.mean(1), margin, baseline, rule, estimators)
    boots = [
        _estimates(steps, boot_loss[b], correct[:, p].mean(1), margin, baseline, rule, estimators)
        for b, p in enumerate(picks)
    ]
    out = {}
    for name in estimators:
        step = math.nan if point is None else point[name]
        values = [math.inf if math.isnan(e[name]) else e[name] for e in boots if e is not None]
        lo = hi = math.nan
        if point is not None and values:
            lo, hi = (float(np.percentile(values, q, method=m)) for q, m in ((2.5, "lower"), (97.5, "higher")))
            earlier = steps[steps < lo]  # a boundary seen at an evaluation lies after the one before it
            lo = float(earlier[-1]) if len(earlier) and math.isfinite(lo) else lo
        out[name] = Escape(name, float(step), lo, hi, bool(point is not None and math.isnan(step)))
    return out
