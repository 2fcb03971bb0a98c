"""Hallucination panel (docs/method.md §4.6): seen vs held-out (vs new) individuals over training.

When knowledge emerges, the attribute loss on held-out individuals rises above the no-knowledge
baseline: the model is less confident on them than on known individuals (lower top-token
probability, higher entropy) but still overconfident. For a fine-tuning run the new individuals
are a third group.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from workbench.data.population import GROUP_LABELS, column_prefix
from workbench.data.population import GROUPS as POPULATION_GROUPS
from workbench.viz.figures import log_steps, mark_phases

GROUPS = {g: column_prefix(g) for g in POPULATION_GROUPS}  # group -> metrics column prefix
METRICS = ("attribute_loss", "attribute_accuracy", "top_probability", "entropy")
_LABELS = {
    "attribute_loss": "attribute loss (nats per value)",
    "attribute_accuracy": "attribute accuracy",
    "top_probability": "top-token probability (value tokens)",
    "entropy": "prediction entropy (nats, value tokens)",
}
_STYLE = {g: dict(color=c, label=GROUP_LABELS[g]) for g, c in zip(POPULATION_GROUPS, ("C0", "C3", "C2"))}


def hallucination_frame(run) -> pd.DataFrame:
    """Long format (step, group, metric, value) from `run.metrics`; groups without columns are left out."""
    m = run.metrics
    frames = []
    for group, prefix in GROUPS.items():
        cols = {f"{prefix}{metric}": metric for metric in METRICS if f"{prefix}{metric}" in m}
        if not cols:
            continue
        long = m[["step", *cols]].rename(columns=cols).melt("step", var_name="metric", value_name="value")
        frames.append(long.assign(group=group))
    if not frames:
        raise ValueError(f"run {run.path} has no evaluation metrics yet")
    return pd.concat(frames, ignore_index=True)[["step", "group", "metric", "value"]]


def plot_hallucination(run) -> Figure:
    """2x2 panel over steps (log-x): attribute loss with the no-knowledge baseline, accuracy,
    top-token probability, entropy; one line per group; plateau boundaries as vertical lines."""
    df = hallucination_frame(run)
    try:
        phases = run.phases()
    except ValueError:  # no per-sequence scores yet
        phases = None
    fig = Figure(figsize=(11, 7.5), layout="constrained")
    axes = fig.subplots(2, 2)
    for ax, metric in zip(axes.ravel(), METRICS):
        for group, g in df[df["metric"] == metric].groupby("group", sort=False):
            ax.plot(g["step"], g["value"], marker=".", ms=3, **_STYLE[group])
        if metric == "attribute_loss":
            ax.axhline(run.config.data.no_knowledge_baseline, color="k", lw=1, label="no-knowledge baseline")
        if metric == "attribute_accuracy":
            ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel(_LABELS[metric])
        log_steps(ax, run.config.train.eval_every)
        mark_phases(ax, phases)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    groups = " vs ".join(_STYLE[g]["label"].split(" (")[0] for g in df["group"].unique())
    fig.suptitle(f"{run.name}: hallucinations ({groups})")
    return fig
