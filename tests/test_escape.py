"""Plateau-end estimators on curves with a known escape: planted plateaus are found by every estimator, a curve
with no plateau reports none, and the accuracy crossing is exact on a log-linear curve."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workbench.escape import ESTIMATORS, accuracy_crossing, attention_half, escape_estimates, first_crossing

BASELINE = 4.0
STEPS = np.arange(0, 2001, 25, dtype=float)


def _curves(escape: float, n: int = 256, seed: int = 0):
    """Per-sequence losses: a fast drop to the baseline, a plateau at it, then a descent from `escape`; accuracy
    rises from 0 after `escape` (10% reached 150 steps later)."""
    rng = np.random.default_rng(seed)
    mean = np.where(STEPS < 100, BASELINE * (2 - STEPS / 100), BASELINE)
    after = STEPS > escape
    mean = np.where(after, BASELINE * np.exp(-(STEPS - escape) / 300), mean)
    acc = np.clip((STEPS - escape) / 1500, 0, 1)
    loss = mean[:, None] + 0.3 * rng.standard_normal((len(STEPS), n))
    correct = (rng.random((len(STEPS), n)) < acc[:, None]).astype(float)
    return loss, correct


@pytest.mark.parametrize("escape", [600.0, 1000.0])
def test_a_planted_escape_is_found_by_every_estimator(escape):
    loss, correct = _curves(escape)
    est = escape_estimates(STEPS, loss, correct, BASELINE, n_boot=100)
    assert set(est) == set(ESTIMATORS)
    assert escape <= est["onset"].step <= est["rule"].step <= escape + 150  # onset first: the earliest departure
    assert est["accuracy10"].step == pytest.approx(escape + 150, abs=60)  # noisy accuracy around its 10% crossing
    for e in est.values():
        assert e.lo <= e.step <= e.hi and not e.censored


def test_later_escapes_give_later_estimates():
    early = escape_estimates(STEPS, *_curves(500.0), BASELINE, n_boot=0)
    late = escape_estimates(STEPS, *_curves(1200.0), BASELINE, n_boot=0)
    assert all(late[k].step > early[k].step for k in ESTIMATORS)


def test_a_curve_without_a_plateau_reports_none():
    descent = BASELINE * 2 * np.exp(-STEPS / 400)[:, None] + np.zeros((1, 64))
    est = escape_estimates(STEPS, descent, np.zeros_like(descent), BASELINE, n_boot=20)
    assert all(math.isnan(e.step) and math.isnan(e.lo) and not e.censored for e in est.values())


def test_a_plateau_that_never_ends_is_censored():
    loss, correct = _curves(5000.0)
    est = escape_estimates(STEPS, loss, correct, BASELINE, n_boot=20)
    assert all(e.censored and math.isnan(e.step) for e in est.values())


def test_accuracy_crossing_is_exact_on_a_log_linear_curve():
    steps = np.array([0, 10, 100, 1000])
    acc = np.array([0.0, 0.0, 0.2, 0.4])  # 0.1 halfway between 10 and 100 in log-steps
    assert accuracy_crossing(steps, acc) == pytest.approx(10**1.5, rel=1e-12)
    assert math.isnan(accuracy_crossing(steps, acc, level=0.5))


def test_attention_half_after_a_dip():
    """The last layer's attribute->name attention dips, then rises from 0.3 to 0.7: attention50 is where it crosses
    0.5 (halfway from its first to its last value) on the way up, interpolated, between the checkpoints around it."""
    steps = [0, 100, 200, 300, 400, 500]
    e = attention_half(steps, [0.3, 0.1, 0.2, 0.4, 0.6, 0.7])
    assert e.step == pytest.approx(350.0) and (e.lo, e.hi) == (300.0, 400.0) and not e.censored
    assert first_crossing(steps, [0.3, 0.1, 0.2, 0.4, 0.6, 0.7], 0.2) == 0.0  # already there at the first step
    assert math.isnan(first_crossing(steps, [0.3, 0.4, 0.5, 0.6, 0.7, 0.8], 0.9))
    assert first_crossing(steps, [1.0, 0.8, 0.6, 0.4, 0.2, 0.0], 0.5) == pytest.approx(250.0)  # a falling curve
