"""Attention stability during fine-tuning vs drift over pre-training (the distances: `workbench.stability`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from workbench.viz.figures import PLAIN


def plot_stability(ft_df: pd.DataFrame, pre_df: pd.DataFrame | None = None) -> Figure:
    """Left: fine-tuning distance from its start per layer (mean over heads), with the median
    checkpoint-to-checkpoint pre-training drift as a dashed line. Right: pre-training drift."""
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_ft, ax_pre = fig.subplots(1, 2)
    for layer, g in ft_df.groupby("layer"):
        m = g.groupby("step")["distance"].mean()
        ax_ft.plot(m.index, m.values, marker=".", label=f"layer {layer}")
    ax_ft.set(
        title="fine-tuning: distance from the start",
        xlabel="fine-tuning step",
        ylabel="Jensen-Shannon divergence (bits)",
    )
    if pre_df is not None and len(pre_df):
        prev = pre_df[pre_df["reference"] == "previous"].groupby("step")["distance"].mean()
        ax_ft.axhline(
            float(np.median(prev.values)),
            color="k",
            ls="--",
            lw=1,
            label="pre-training, checkpoint to checkpoint (median)",
        )
        total = pre_df[pre_df["reference"] == "start"].groupby("step")["distance"].mean()
        ax_ft.axhline(float(total.iloc[-1]), color="k", ls=":", lw=1, label="pre-training, step 0 to the end")
        for name, ls in (("start", "-"), ("previous", ":")):
            m = pre_df[pre_df["reference"] == name].groupby("step")["distance"].mean()
            ax_pre.plot(m.index, m.values, ls=ls, marker=".", label=f"vs {name}")
        ax_pre.set_xscale("log")
        ax_pre.xaxis.set_major_formatter(PLAIN)
    ax_pre.set(
        title="pre-training drift (mean over layers and heads)",
        xlabel="pre-training step",
        ylabel="Jensen-Shannon divergence (bits)",
    )
    ax_ft.legend(fontsize=8)
    if ax_pre.has_data():
        ax_pre.legend(fontsize=8)
    return fig
