"""Figures of patching: the reference-step grid's curves, layer x position and per-head heatmaps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.viz.figures import colormap, log_steps, subplots


def plot_grid(grid_df: pd.DataFrame, curves_df: pd.DataFrame, no_knowledge_baseline: float | None = None):
    """Attribute loss and accuracy vs step (log-x), one colour per reference step, line style per
    start step, the unpatched reference as a black dashed line; legends give final accuracies."""
    final = {
        (None if pd.isna(r) else int(r), None if pd.isna(s) else int(s)): acc
        for r, s, acc in zip(grid_df["reference_step"], grid_df["start_step"], grid_df["final_attribute_accuracy"])
    }
    fig, (ax_l, ax_a) = subplots(1, 2, figsize=(11, 4))
    patched = curves_df[curves_df["reference_step"].notna()]
    ref_steps = sorted(patched["reference_step"].unique())
    starts = sorted(patched["start_step"].unique())
    cmap = colormap()
    styles = ["-", "--", ":", "-."]
    for (r, s), c in patched.groupby(["reference_step", "start_step"]):
        colour = cmap(ref_steps.index(r) / max(len(ref_steps) - 1, 1))
        style = styles[starts.index(s) % len(styles)]
        label = f"ref step {r}" + (f", start {s}" if len(starts) > 1 else "")
        if (int(r), int(s)) in final:
            label += f" (final acc {final[int(r), int(s)]:.2f})"
        ax_l.plot(c["step"], c["attribute_loss"], color=colour, ls=style, label=label)
        ax_a.plot(c["step"], c["attribute_accuracy"], color=colour, ls=style, label=label)
    base = curves_df[curves_df["reference_step"].isna()]
    if len(base):
        label = "reference (unpatched)" + (f" (final acc {final[None, None]:.2f})" if (None, None) in final else "")
        ax_l.plot(base["step"], base["attribute_loss"], "k--", lw=1.5, label=label)
        ax_a.plot(base["step"], base["attribute_accuracy"], "k--", lw=1.5, label=label)
    if no_knowledge_baseline is not None:
        ax_l.axhline(no_knowledge_baseline, color="grey", lw=1, label="no-knowledge baseline")
    steps = curves_df["step"][curves_df["step"] > 0]
    for ax in (ax_l, ax_a):
        log_steps(ax, int(steps.min()) if len(steps) else 1)
        ax.grid(alpha=0.3)
    ax_l.set_ylabel("attribute loss (nats per value)")
    ax_a.set_ylabel("attribute accuracy")
    ax_a.set_ylim(-0.02, 1.02)
    ax_l.legend(fontsize=7)
    fig.suptitle("training with attention patterns from reference checkpoints")
    fig.tight_layout()
    return fig


def plot_layer_position(df: pd.DataFrame, value: str | None = None, title: str | None = None):
    """Heatmap layer x position of `value` (default: normalized, else score), x labelled with tokens."""
    value = value or ("normalized" if "normalized" in df and df["normalized"].notna().any() else "score")
    grid = df.pivot(index="layer", columns="position", values=value)
    tokens = df.drop_duplicates("position").set_index("position")["token"].reindex(grid.columns)
    fig, ax = subplots(figsize=(min(40.0, max(6.0, 0.16 * grid.shape[1] + 2)), 1.2 + 0.5 * grid.shape[0]))
    lim = float(np.nanmax(np.abs(grid.to_numpy()))) or 1.0
    im = ax.imshow(grid.to_numpy(), aspect="auto", cmap="RdBu", vmin=-lim, vmax=lim)
    ax.set_xticks(range(grid.shape[1]), [f"{t}" for t in tokens], rotation=90, fontsize=6)
    ax.set_yticks(range(grid.shape[0]), grid.index)
    ax.set_ylabel("layer")
    fig.colorbar(im, ax=ax, label=value, fraction=0.03)
    ax.set_title(title or f"activation patching: {df.attrs.get('component', '')} ({value})")
    fig.tight_layout()
    return fig


def plot_heads(df: pd.DataFrame, value: str | None = None, title: str | None = None):
    """Heatmap layer x head of `value` (default: normalized, else delta, else score), cells annotated."""
    value = value or next(c for c in ("normalized", "delta", "score") if c in df and df[c].notna().any())
    heads = df[(df["head"] >= 0)] if "head" in df else df
    grid = heads.pivot(index="layer", columns="head", values=value)
    fig, ax = subplots(figsize=(max(4.0, 1.5 + 0.6 * grid.shape[1]), max(3.0, 1.0 + 0.5 * grid.shape[0])))
    arr = grid.to_numpy()
    lim = float(np.nanmax(np.abs(arr))) or 1.0
    im = ax.imshow(arr, aspect="auto", cmap="RdBu", vmin=-lim, vmax=lim)
    if arr.size <= 256:
        for (i, j), v in np.ndenumerate(arr):
            ax.text(
                j, i, f"{v:.2g}", ha="center", va="center", fontsize=7, color="white" if abs(v) > 0.6 * lim else "black"
            )
    ax.set_xticks(range(grid.shape[1]), grid.columns)
    ax.set_yticks(range(grid.shape[0]), grid.index)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    fig.colorbar(im, ax=ax, label=value, fraction=0.05)
    ax.set_title(title or f"{df.attrs.get('component', 'heads')} ({value})")
    fig.tight_layout()
    return fig
