"""The sweep figures draw what their tables hold (synthetic tables; the notebook test draws real ones)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from workbench.sweeps.results import power_law_fit
from workbench.viz import plot_finetune_drops, plot_scaling, plot_tradeoff


def scaling_table() -> pd.DataFrame:
    rows = []
    for n, end in ((1000, np.nan), (2000, 500.0), (4000, 1400.0), (8000, 3600.0)):
        for s in (0, 1):
            rows.append(
                {
                    "trial": f"N{n}-seed{s}",
                    "data.n_individuals": n,
                    "seed": s,
                    "status": "finished",
                    "plateau_end": end,
                    "plateau_end_lo": end * 0.9,
                    "plateau_end_hi": np.inf if n == 8000 else end * 1.1,
                    "has_plateau": not np.isnan(end),
                    "censored": False,
                    "steps": 4000,
                }
            )
    return pd.DataFrame(rows)


def test_scaling_figure_marks_runs_fit_study_and_no_plateau():
    t = scaling_table()
    fig = plot_scaling(t, power_law_fit(t))
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert any(lab.startswith("fit:") for lab in labels) and any(lab.startswith("study:") for lab in labels)
    assert any("no plateau: N=1000 (2 runs)" in lab for lab in labels)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"


def test_tradeoff_and_drops_figures_have_one_line_per_group():
    summary = pd.DataFrame(
        {
            "data.sampler.alpha": [0, 1, 0, 1],
            "data.n_individuals": [2000, 2000, 4000, 4000],
            "plateau_end": [500, 300, 1400, 800],
            "plateau_end_lo": [450, 250, 1300, 700],
            "plateau_end_hi": [550, 350, 1500, 900],
            "final_attribute_accuracy": [0.6, 0.4, 0.3, 0.2],
        }
    )
    fig = plot_tradeoff(summary, "data.sampler.alpha", "data.n_individuals")
    assert [len(ax.get_lines()) >= 2 for ax in fig.axes] == [True, True]
    assert [len(ax.containers) for ax in fig.axes] == [2, 0]  # error bars only where an interval is given
    summary["final_attribute_accuracy_lo"], summary["final_attribute_accuracy_hi"] = [0.5, 0.3, 0.2, 0.1], 0.7
    fig = plot_tradeoff(summary, "data.sampler.alpha", "data.n_individuals")
    bars = fig.axes[1].containers[0].lines[2][0].get_segments()  # N = 2,000's accuracy interval per alpha
    assert [len(ax.containers) for ax in fig.axes] == [2, 2] and [tuple(b[:, 1]) for b in bars] == [
        (0.5, 0.7),
        (0.3, 0.7),
    ]
    drops = pd.DataFrame(
        {
            "finetune.n_new": [100, 1000, 100, 1000],
            "finetune.replay_weight": [0.0, 0.0, 1.0, 1.0],
            "initial_drop": [0.3, 0.6, 0.3, 0.5],
            "final_drop": [0.2, 0.5, 0.05, 0.1],
        }
    )
    fig = plot_finetune_drops(drops)
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 2]
