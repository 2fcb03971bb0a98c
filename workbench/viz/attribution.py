"""Figures of data attribution (`workbench.attribution`): the head finder's scores, the influence of the
window's sequences, EK-FAC against exact influence, and the retrains' effect on the head's formation."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def plot_head_scores(scores: pd.DataFrame, chosen: tuple[int, int] | None = None) -> Figure:
    """Per head (layer x head): attribute -> name attention and the loss increase when it is ablated."""
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    for ax, column, title in zip(
        fig.subplots(1, 2),
        ("attribute_to_name", "ablation_effect"),
        ("attribute -> name attention", "attribute loss increase when ablated"),
    ):
        grid = scores.pivot(index="layer", columns="head", values=column)
        im = ax.imshow(grid.to_numpy(), cmap="viridis", aspect="auto")
        ax.set(
            xticks=range(grid.shape[1]),
            xticklabels=grid.columns,
            yticks=range(grid.shape[0]),
            yticklabels=grid.index,
            xlabel="head",
            ylabel="layer",
            title=title,
        )
        fig.colorbar(im, ax=ax)
        if chosen is not None and chosen[0] in grid.index:
            ax.scatter(
                [list(grid.columns).index(chosen[1])],
                [list(grid.index).index(chosen[0])],
                marker="s",
                s=300,
                facecolors="none",
                edgecolors="red",
                linewidths=2,
            )
    return fig


def plot_influence(sequences: pd.DataFrame, by_step: pd.DataFrame) -> Figure:
    """Left: the distribution of per-sequence influence (> 0 promotes the head); right: the window's
    influence summed per training step."""
    fig = Figure(figsize=(10, 3.5), layout="constrained")
    ax_h, ax_s = fig.subplots(1, 2)
    ax_h.hist(sequences["influence"], bins=80, color="C0")
    ax_h.axvline(0, color="k", lw=0.8)
    ax_h.set(xlabel="influence on the measure (> 0 promotes the head)", ylabel="sequences", yscale="log")
    s = by_step.sort_values("step")
    ax_s.plot(s["step"], s["total"], lw=0.8)
    ax_s.axhline(0, color="k", lw=0.8)
    ax_s.set(xlabel="training step", ylabel="summed influence of its batch")
    return fig


def plot_exact_vs_ekfac(exact: np.ndarray, ekfac: np.ndarray, stats: dict) -> Figure:
    """EK-FAC influence against the exact influence (explicit Fisher, solved directly), per sequence."""
    fig = Figure(figsize=(4.5, 4), layout="constrained")
    ax = fig.subplots()
    ax.scatter(exact, ekfac, s=6)
    ax.set(
        xlabel="exact influence",
        ylabel="EK-FAC influence",
        title=f"Spearman {stats['spearman']:.3f}, top-10% overlap {stats['top_overlap']:.2f}",
    )
    return fig


def plot_retrains(curves: pd.DataFrame, table: pd.DataFrame) -> Figure:
    """Left: the head's measure over training per retrain arm (mean over seeds); right: plateau end per arm,
    each seed a point with its 95% interval. `curves`: run, step, measure; `table`: `retrain_table`."""
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_c, ax_p = fig.subplots(1, 2)
    arm = table.assign(arm=table["action"] + " " + table["selection"] + " " + table["percent"].map("{:g}%".format))
    arm.loc[arm["selection"] == "none", "arm"] = "reference"
    merged = curves.merge(arm[["run", "arm"]], on="run")
    for i, (name, g) in enumerate(merged.groupby("arm", sort=True)):
        m = g.groupby("step")["measure"].mean()
        ax_c.plot(m.index, m.to_numpy(), color=f"C{i}", label=name)
        rows = arm[arm["arm"] == name]
        x = np.full(len(rows), i) + np.linspace(-0.15, 0.15, len(rows))
        err = np.vstack([rows["plateau_end"] - rows["plateau_end_lo"], rows["plateau_end_hi"] - rows["plateau_end"]])
        ax_p.errorbar(
            x,
            rows["plateau_end"],
            yerr=np.clip(np.nan_to_num(err, posinf=0), 0, None),
            fmt="o",
            color=f"C{i}",
            capsize=3,
        )
    names = sorted(merged["arm"].unique())
    ax_c.set(xlabel="training step", ylabel="measure (attribute -> name attention)", title="the head's formation")
    ax_c.legend(fontsize=7)
    ax_p.set(xticks=range(len(names)), ylabel="plateau end (step, 95% CI)", title="plateau end per arm")
    ax_p.set_xticklabels(names, rotation=30, ha="right", fontsize=7)
    return fig
