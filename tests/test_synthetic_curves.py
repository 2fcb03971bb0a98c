"""Synthetic loss curves with a known escape: their shape, their noise, and the plateau rule recovering a planted
scaling exponent from them (the positive control of analysis/max_slope.py)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workbench.phases import PlateauRule, plateau
from workbench.synthetic_curves import CurveShape, eval_steps, per_sequence_losses, random_shape

SCRIPT = Path(__file__).resolve().parents[1] / "analysis" / "max_slope.py"


def test_a_plateau_curve_starts_near_the_baseline_and_escapes_at_its_step():
    shape = CurveShape(escape=1000, rate=0.8, approach=0.1)
    steps = eval_steps(1000)
    ratio = np.exp(shape.log_ratio(steps))
    assert ratio[0] == pytest.approx((1 + shape.a) * (1 + shape.approach), rel=1e-3)  # first phase from ~3.6 b
    assert 0.95 < ratio[steps == 600][0] < 1.1  # on the plateau
    start, end, censored, _ = plateau(steps, ratio, 1.0)
    assert 100 <= start <= 300 and not censored
    assert 1000 <= end <= 1000 + 0.5 * 1000 / shape.rate  # lags E by ~0.1 E / rate


def test_a_straight_descent_is_no_plateau():
    steps = eval_steps(200)
    ratio = np.exp(CurveShape(escape=200, rate=0.8, approach=0.0).log_ratio(steps))
    assert math.isnan(plateau(steps, ratio, 1.0)[0])


def test_the_noise_has_the_requested_spreads():
    rng = np.random.default_rng(0)
    steps = eval_steps(1000)
    losses = per_sequence_losses(CurveShape(escape=1000), steps, rng, n_sequences=2000, common=0.0)
    across = np.log(losses).std(1)  # per-sequence and per-both factors
    assert np.allclose(across, math.hypot(0.15, 0.05), rtol=0.1)
    shared = per_sequence_losses(CurveShape(escape=1000), steps, rng, n_sequences=2000, spread=0, jitter=0, common=0.1)
    assert np.log(shared).std(1).max() < 1e-9  # the per-evaluation factor is one for all sequences


def test_the_rule_recovers_a_planted_exponent():
    """Escapes growing as N^0.81 over an 8x span of N: the default rule finds every plateau and the fitted exponent
    lies within 0.1 of the planted one; with escapes growing as N^1.5 it follows them."""
    rng = np.random.default_rng(1)
    for exponent in (0.81, 1.5):
        ns, ends = [], []
        for n in (2000, 4000, 8000, 16000):
            for _ in range(3):
                escape = 525 * (n / 2000) ** exponent
                steps = eval_steps(escape)
                loss = per_sequence_losses(random_shape(escape, rng), steps, rng).mean(1)
                ns.append(n)
                ends.append(plateau(steps, loss, 1.0, PlateauRule())[1])
        assert all(math.isfinite(e) for e in ends)
        assert abs(np.polyfit(np.log(ns), np.log(ends), 1)[0] - exponent) < 0.1


@pytest.mark.slow
def test_max_slope_script_chooses_by_its_stated_criterion():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--sweeps", "1"], capture_output=True, text=True, timeout=120, check=True
    )
    assert "| max_slope | found | false_plateau |" in proc.stdout
    assert "chosen max_slope:" in proc.stdout
    bad = subprocess.run([sys.executable, str(SCRIPT), "--sweeps", "0"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--sweeps 0: allowed >= 1" in bad.stderr
