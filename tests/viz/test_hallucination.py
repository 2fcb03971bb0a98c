"""Hallucination panel: long-format frame from a run's metrics and its 2x2 figure."""

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from workbench.phases import Phases
from workbench.viz.hallucination import METRICS, hallucination_frame, plot_hallucination


def test_frame_is_long_format_over_seen_and_heldout(tiny_run):
    df = hallucination_frame(tiny_run)
    assert list(df.columns) == ["step", "group", "metric", "value"]
    assert set(df["group"]) == {"seen", "heldout"}  # a pre-training run has no new individuals
    assert set(df["metric"]) == set(METRICS)
    m = tiny_run.metrics
    assert len(df) == 2 * len(METRICS) * len(m)
    held = df[(df["group"] == "heldout") & (df["metric"] == "entropy")]
    np.testing.assert_array_equal(held["value"], m["heldout_entropy"])
    seen = df[(df["group"] == "seen") & (df["metric"] == "attribute_loss")]
    np.testing.assert_array_equal(seen["step"], m["step"])
    np.testing.assert_array_equal(seen["value"], m["attribute_loss"])


def test_figure_has_four_panels_with_the_baseline(tiny_run):
    fig = plot_hallucination(tiny_run)
    assert len(fig.axes) == 4
    loss_ax = fig.axes[0]
    flat = [line for line in loss_ax.get_lines() if np.ptp(line.get_ydata()) == 0 and len(line.get_ydata()) == 2]
    assert any(line.get_ydata()[0] == pytest.approx(tiny_run.config.data.no_knowledge_baseline) for line in flat)
    assert all(len(ax.get_lines()) >= 2 for ax in fig.axes)  # seen and held-out curves everywhere


def _fake_run(phases):
    steps = np.array([0, 10, 20, 40])
    cols = {"step": steps}
    for prefix in ("", "heldout_", "new_"):
        for metric in METRICS:
            cols[f"{prefix}{metric}"] = np.linspace(0.1, 0.9, len(steps))
    config = SimpleNamespace(data=SimpleNamespace(no_knowledge_baseline=4.2), train=SimpleNamespace(eval_every=10))
    return SimpleNamespace(metrics=pd.DataFrame(cols), config=config, name="fake", path="fake", phases=lambda: phases)


def test_finetuning_runs_show_new_individuals_and_plateau_lines():
    run = _fake_run(Phases(plateau_start=10.0, plateau_end=math.nan))
    assert set(hallucination_frame(run)["group"]) == {"seen", "heldout", "new"}
    fig = plot_hallucination(run)
    for ax in fig.axes:
        vertical = [line for line in ax.get_lines() if len(set(line.get_xdata())) == 1 and len(line.get_xdata()) == 2]
        assert [line.get_xdata()[0] for line in vertical] == [10.0]  # the NaN plateau end draws nothing
        assert len(ax.get_lines()) == 3 + 1 + (ax is fig.axes[0])  # 3 groups, 1 boundary, baseline on loss


def test_run_without_metrics_is_a_value_error():
    run = SimpleNamespace(metrics=pd.DataFrame({"step": pd.Series(dtype=int)}), path="empty")
    with pytest.raises(ValueError, match="no evaluation metrics"):
        hallucination_frame(run)
