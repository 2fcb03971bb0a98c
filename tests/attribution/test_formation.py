"""The head's formation step (halfway crossing, mean formation step) and the paired effects of retrain arms."""

import math

import numpy as np
import pandas as pd
import pytest

from workbench.attribution.formation import effects, formation_level, formation_step, mean_formation_step

STEPS = np.arange(0, 2001, 25)


def sigmoid_curve(centre: float, noise: float = 0.0, seed: int = 0, width: float = 60) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    value = 0.3 + 0.6 / (1 + np.exp(-(STEPS - centre) / width)) + noise * rng.standard_normal(len(STEPS))
    return pd.DataFrame({"step": STEPS, "measure": value})


def test_halfway_crossing_is_interpolated_and_nan_when_never_reached():
    curve = pd.DataFrame({"step": [0, 100, 200], "measure": [0.0, 0.2, 1.0]})
    assert formation_level(curve) == pytest.approx(0.5)
    assert formation_step(curve, 0.5) == pytest.approx(100 + 100 * 0.3 / 0.8)
    assert math.isnan(formation_step(curve, 1.5))


def test_mean_formation_step_of_a_jump_is_the_jump():
    curve = pd.DataFrame({"step": np.arange(0, 1001, 1), "measure": np.where(np.arange(1001) < 400, 0.2, 0.9)})
    assert mean_formation_step(curve, 0.2, 0.9, 1000) == pytest.approx(400, abs=1)


def test_mean_formation_step_recovers_a_shift_exactly():
    """A curve shifted by d steps (both saturated before the end) moves by d: the planted effect is found."""
    ref, late = sigmoid_curve(500), sigmoid_curve(800)
    first, last = ref["measure"].iloc[0], ref["measure"].iloc[-1]
    shift = mean_formation_step(late, first, last, 2000) - mean_formation_step(ref, first, last, 2000)
    assert shift == pytest.approx(300, abs=1)
    assert mean_formation_step(ref, first, last, 2000) == pytest.approx(500, abs=2)


def test_mean_formation_step_is_steadier_than_the_halfway_crossing_on_a_slow_rise():
    """A rise over ~600 steps (the planted worlds' heads) with independent noise: the first crossing is early and
    spread out, the mean formation step is not. (On a sharp rise the crossing is the steadier: the mean's noise
    grows with the curve's length, not its slope.)"""
    ref = sigmoid_curve(500, width=150)
    first, last = 0.3, 0.9
    curves = [sigmoid_curve(500, noise=0.05, seed=s, width=150) for s in range(60)]
    halfway = [formation_step(c, formation_level(ref)) for c in curves]
    mean = [mean_formation_step(c, first, last, 2000) for c in curves]
    assert np.std(mean) < 0.75 * np.std(halfway)
    assert abs(np.mean(mean) - 500) < 15


def test_mean_formation_step_is_undefined_on_a_flat_reference():
    curve = sigmoid_curve(500)
    assert math.isnan(mean_formation_step(curve, 0.4, 0.4, 2000))


def test_effects_pair_each_arm_with_random_removal_of_the_same_seed():
    rows = [
        {"seed": s, "action": "remove", "selection": sel, "percent": 10.0, "plateau_end": v}
        for s, vals in enumerate([(1000, 900), (1300, 1000), (1100, 1050)])
        for sel, v in zip(["planted", "random"], vals, strict=True)
    ]
    table = pd.DataFrame(rows)
    out = effects(table, "plateau_end").set_index("selection")
    d = np.array([100, 300, 50])
    half = 4.302653 * d.std(ddof=1) / math.sqrt(3)  # t_{0.975, 2}
    assert out.loc["planted", "delta_vs_random"] == pytest.approx(d.mean())
    assert out.loc["planted", "lo"] == pytest.approx(d.mean() - half, rel=1e-5)
    assert out.loc["random", "delta_vs_random"] == 0
    assert out.loc["planted", "n_seeds"] == 3
