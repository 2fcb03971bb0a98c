"""The operational plateau definition on synthetic curves."""

import math

import numpy as np

from workbench.phases import boundaries, detect_phases


def test_three_phase_curve():
    steps = np.arange(0, 100, 10)
    loss = np.array([30, 12, 10.5, 10.2, 10.0, 9.95, 7.0, 3.0, 1.0, 0.5])
    assert boundaries(steps, loss, baseline=10.0) == (20, 60)


def test_never_reaching_or_leaving_the_baseline():
    steps = np.arange(5)
    assert all(math.isnan(x) for x in boundaries(steps, np.full(5, 20.0), 10.0))
    start, end = boundaries(steps, np.array([20, 10.5, 10, 10, 10]), 10.0)
    assert start == 1 and math.isnan(end)


def test_bootstrap_interval_contains_the_point_estimate():
    rng = np.random.default_rng(0)
    steps = np.arange(0, 200, 10)
    mean = np.concatenate([np.linspace(30, 10, 5), np.full(7, 10.0), np.linspace(10, 1, 8)])
    per_seq = mean[:, None] + rng.normal(0, 1.0, size=(len(steps), 256))
    ph = detect_phases(steps, per_seq, baseline=10.0, n_boot=100)
    assert ph.plateau_start_ci[0] <= ph.plateau_start <= ph.plateau_start_ci[1]
    assert ph.plateau_end_ci[0] <= ph.plateau_end <= ph.plateau_end_ci[1]
    assert ph.plateau_length > 0
