"""The operational plateau definition on synthetic curves whose answer is known."""

import math

import numpy as np
import pytest

from workbench.phases import PlateauRule, boundaries, detect_phases, local_slopes, plateau

B = 5.0  # the no-knowledge baseline of the synthetic curves
STEPS = np.arange(0, 2050, 50, dtype=float)


def _three_phases(level: float = B, start: float = 300, end: float = 1000, final: float = 0.2 * B) -> np.ndarray:
    """Fall to `level` by `start`, flat until `end`, then fall to `final`."""
    fall = np.interp(STEPS, [0, start], [3 * B, level])
    rise = np.interp(STEPS, [end, end + 200], [level, final])
    return np.where(STEPS <= start, fall, np.where(STEPS <= end, level, rise))


def test_three_phase_curve():
    start, end, censored, level = plateau(STEPS, _three_phases(), B)
    assert (start, end, censored) == (300, 1050, False) and level == pytest.approx(B)


def test_a_straight_descent_has_no_plateau():
    """Falling straight through the +-20% band around the baseline is not a plateau."""
    loss = np.interp(STEPS, [0, 2000], [3 * B, 0.1 * B])
    assert all(math.isnan(x) for x in boundaries(STEPS, loss, B))


def test_one_noisy_dip_does_not_end_the_plateau():
    loss = _three_phases()
    loss[STEPS == 600] = 0.8 * B  # one evaluation far below the band
    assert boundaries(STEPS, loss, B) == (300, 1050)


@pytest.mark.parametrize("level", [1.12 * B, 0.89 * B])
def test_a_plateau_off_the_baseline_is_found_and_escapes_from_its_own_level(level):
    start, end, censored, found = plateau(STEPS, _three_phases(level=level), B)
    assert (start, end, censored) == (300, 1050, False) and found == pytest.approx(level)


def test_a_plateau_that_never_ends_is_censored_not_dropped():
    loss = _three_phases(end=5000)
    start, end, censored, _ = plateau(STEPS, loss, B)
    assert start == 300 and math.isnan(end) and censored
    per_seq = loss[:, None] + np.random.default_rng(0).normal(0, 0.05 * B, size=(len(STEPS), 64))
    ph = detect_phases(STEPS, per_seq, B, n_boot=50)
    assert ph.exists and ph.censored and ph.plateau_end_ci[1] == math.inf
    assert "censored" in ph.describe()


def test_never_reaching_the_baseline_is_no_plateau():
    ph = detect_phases(STEPS, np.full((len(STEPS), 8), 3 * B), B, n_boot=20)
    assert not ph.exists and ph.p_plateau == 0 and ph.describe() == "no plateau"


def test_bootstrap_interval_contains_the_estimate_and_the_evaluation_spacing():
    rng = np.random.default_rng(0)
    per_seq = _three_phases()[:, None] + rng.normal(0, 0.3 * B, size=(len(STEPS), 256))
    ph = detect_phases(STEPS, per_seq, B, n_boot=100)
    assert ph.plateau_start_ci[0] < ph.plateau_start <= ph.plateau_start_ci[1]  # lower end: the evaluation before
    assert ph.plateau_end_ci[0] < ph.plateau_end <= ph.plateau_end_ci[1]
    assert ph.plateau_length > 0 and ph.p_plateau > 0.9


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"level_tol": 0.0}, "rule.level_tol"),
        ({"window": 1}, "rule.window"),
        ({"sustain": 0}, "rule.sustain"),
        ({"escape": 1.0}, "rule.escape"),
    ],
)
def test_bad_rules_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        PlateauRule(**kwargs)


def test_a_slowly_drifting_plateau_is_still_a_plateau():
    """Real plateaus drift (cpu-quick: slopes -0.08 to -0.27 in log-log); a descent at slope 1 is none."""
    drift = _three_phases() * np.where((STEPS > 300) & (STEPS <= 1000), (np.maximum(STEPS, 1) / 300) ** -0.15, 1.0)
    start, end, censored, _ = plateau(STEPS, drift, B)
    assert start == 300 and 900 <= end <= 1100 and not censored
    power = 3 * B * (np.maximum(STEPS, 25) / 25) ** -1.0  # passes through the band at slope -1
    assert math.isnan(plateau(STEPS, power, B)[0])


def test_slopes_asked_only_where_masked_equal_the_full_ones():
    """`plateau` fits local slopes only near the baseline (the fit is quadratic in a window's evaluations)."""
    loss = _three_phases() * np.exp(np.random.default_rng(1).normal(0, 0.02, len(STEPS)))
    near = np.abs(loss - B) <= 0.2 * B
    full, masked = local_slopes(STEPS, loss, 1.5, 3), local_slopes(STEPS, loss, 1.5, 3, where=near)
    assert near.any() and not near.all()
    np.testing.assert_array_equal(masked[near], full[near])
    assert np.isnan(masked[~near]).all() and not np.isnan(full[~near]).all()
