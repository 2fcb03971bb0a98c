"""Name-token attention metrics over training, as figures (the metrics: `workbench.attention`)."""

from __future__ import annotations

import pandas as pd

from workbench.attention import COLUMNS, resolve_layer
from workbench.viz.figures import log_steps, mark_phases, subplots


def plot_attention_over_training(df: pd.DataFrame, metric: str, layer: int | str = "first", phases=None):
    """One metric of one layer vs step: the mean over heads, faint per-head lines, plateau markers.

    df: the output of `attention_over_training`; layer: 'first', 'last' or an index; phases: a
    `Phases` (e.g. `run.phases()`) for vertical lines at the plateau start and end.
    """
    missing = {"step", *COLUMNS} - set(df.columns)
    if missing:
        raise ValueError(f"df lacks columns {sorted(missing)}: pass the output of attention_over_training")
    if metric not in set(df["metric"]):
        raise ValueError(f"metric={metric!r} is not in df: allowed {sorted(set(df['metric']))}")
    layer = resolve_layer(layer, int(df["layer"].max()) + 1)
    sel = df[(df["metric"] == metric) & (df["layer"] == layer)]
    wide = sel.pivot_table(index="step", columns="head", values="value").sort_index()
    fig, ax = subplots(figsize=(6, 4))
    for h in wide.columns:
        ax.plot(
            wide.index, wide[h], color="C0", alpha=0.25, lw=1, label="single heads" if h == wide.columns[0] else None
        )
    ax.plot(wide.index, wide.mean(axis=1), color="C0", lw=2.2, marker="o", ms=3, label="mean over heads")
    positive = wide.index[wide.index > 0]
    if len(positive):
        log_steps(ax, int(positive.min()))
    else:
        ax.set_xlabel("training step")
    mark_phases(ax, phases)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}, layer {layer}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
