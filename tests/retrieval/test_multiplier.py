"""workbench.retrieval.multiplier: the equivalent step of a synthetic accuracy curve, computed exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workbench.retrieval.multiplier import compute_multiplier, equivalent_step, multiplier_interval

STEPS = np.array([0, 1, 10, 100, 1000, 10_000])
ACC = np.array([0.0, 0.0, 0.25, 0.5, 0.75, 1.0])  # accuracy = log10(step) / 4: linear in log-steps


@pytest.mark.parametrize("target, expected", [(0.5, 100.0), (0.625, 10**2.5), (0.3, 10**1.2), (1.0, 10_000.0)])
def test_equivalent_step_of_a_log_linear_curve_is_exact(target, expected):
    s, status = equivalent_step(STEPS, ACC, target)
    assert status == "within" and s == pytest.approx(expected, rel=1e-12)


def test_multiplier_is_equivalent_step_over_step():
    m = compute_multiplier(STEPS, ACC, 10, 0.5)  # retrieval at step 10 reaches step 100's accuracy
    assert m.multiplier == pytest.approx(10.0) and m.status == "within" and m.equivalent_step == pytest.approx(100)
    # no gain: the same accuracy as the baseline at that step gives 1
    assert compute_multiplier(STEPS, ACC, 1000, 0.75).multiplier == pytest.approx(1.0)
    # retrieval that hurts gives < 1
    assert compute_multiplier(STEPS, ACC, 1000, 0.5).multiplier == pytest.approx(0.1)


def test_beyond_and_below_the_run_are_bounds_never_numbers():
    beyond = compute_multiplier(STEPS[:5], ACC[:5], 100, 0.9)  # the run stops at 0.75
    assert beyond.status == "beyond" and math.isnan(beyond.multiplier) and math.isnan(beyond.equivalent_step)
    assert beyond.bound == pytest.approx(10.0)  # a lower bound: 1000 / 100
    below = compute_multiplier(STEPS, ACC, 100, 0.0)
    assert below.status == "below" and math.isnan(below.multiplier) and below.bound == pytest.approx(0.01)
    # a longer baseline of the same curve turns the bound into the exact value
    longer = compute_multiplier(STEPS, ACC, 100, 0.9)
    assert longer.status == "within" and longer.multiplier == pytest.approx(10**3.6 / 100, rel=1e-12)


def test_an_interval_past_the_baseline_is_open_not_capped():
    targets = np.linspace(0.6, 0.9, 41)  # the 2.5% and 97.5% quantiles fall on 0.6075 and 0.8925
    lo, hi = multiplier_interval(STEPS[:5], ACC[:5], 100, targets)  # half of them beyond the run's 0.75
    assert lo == pytest.approx(10 ** (4 * 0.6075) / 100, rel=1e-9) and hi == math.inf
    lo, hi = multiplier_interval(STEPS, ACC, 100, targets)  # the longer baseline measures them all
    assert hi == pytest.approx(10 ** (4 * 0.8925) / 100, rel=1e-9)
    assert math.isnan(compute_multiplier(STEPS, ACC, 0, 0.5).multiplier)


def test_first_crossing_of_a_non_monotone_curve():
    steps, acc = np.array([10, 20, 40, 80]), np.array([0.1, 0.6, 0.4, 0.8])
    s, status = equivalent_step(steps, acc, 0.5)
    assert status == "within" and s == pytest.approx(np.exp(np.log(10) + 0.8 * (np.log(20) - np.log(10))))


def test_interval_contains_the_point_and_shrinks_with_less_spread():
    rng = np.random.default_rng(0)
    wide = multiplier_interval(STEPS, ACC, 10, 0.5 + 0.1 * rng.standard_normal(400))
    narrow = multiplier_interval(STEPS, ACC, 10, 0.5 + 0.01 * rng.standard_normal(400))
    assert wide[0] < narrow[0] < 10.0 < narrow[1] < wide[1]


def test_bad_baselines_raise():
    with pytest.raises(ValueError, match="step > 0"):
        equivalent_step([0], [0.5], 0.5)
    with pytest.raises(ValueError, match="same length"):
        equivalent_step([1, 2], [0.5], 0.5)
    with pytest.raises(ValueError, match="step=-1"):
        compute_multiplier(STEPS, ACC, -1, 0.5)
