"""Figures of the MLP key-value probes: localisation by layer, linear probes along depth, the toy memory."""

from __future__ import annotations

import pandas as pd

from workbench.probes import linear, localisation, toy_memory
from workbench.viz.figures import Figure, colormap, subplots


def plot_localisation(df: pd.DataFrame, attribute: str = "all") -> Figure:
    """Score per layer, one panel per method; one line per checkpoint step when df has a step column."""
    missing = set(localisation.COLUMNS) - set(df.columns)
    if missing:
        raise ValueError(f"df lacks columns {sorted(missing)}; expected the output of localise()")
    sub = df[df["attribute"] == attribute]
    if sub.empty:
        raise ValueError(f"attribute={attribute!r} has no rows: allowed {sorted(df['attribute'].unique())}")
    methods = [m for m in localisation.METHODS if m in set(sub["method"])]
    fig, axes = subplots(1, len(methods), figsize=(4.2 * len(methods), 3.4), squeeze=False)
    steps = sorted(sub["step"].unique()) if "step" in sub else [None]
    cmap = colormap()
    for ax, method in zip(axes[0], methods):
        for k, s in enumerate(steps):
            part = sub[(sub["method"] == method) & ((sub["step"] == s) if s is not None else True)]
            part = part.sort_values("layer")
            color = cmap(k / max(len(steps) - 1, 1)) if s is not None else "C0"
            ax.plot(part["layer"], part["score"], marker="o", color=color, label=f"step {s}" if s is not None else None)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("MLP layer")
        ax.set_ylabel("recovered fraction" if method == "patching" else "drop in value log-prob (nats)")
        ax.set_title(f"{method} ({attribute})")
        ax.set_xticks(sorted(sub["layer"].unique()))
        if steps[0] is not None:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_probes(df: pd.DataFrame) -> Figure:
    """Accuracy along depth (before/after each MLP), one panel per attribute, chance dashed;
    one line per checkpoint step when df has a step column."""
    missing = set(linear.COLUMNS) - set(df.columns)
    if missing:
        raise ValueError(f"df lacks columns {sorted(missing)}; expected the output of probe_accuracy()")
    attributes = list(dict.fromkeys(df["attribute"]))
    n_layers = int(df["layer"].max()) + 1
    depth = df["layer"] * 2 + (df["site"] == "resid_post")
    df = df.assign(depth=depth)
    cols = min(4, len(attributes))
    rows = -(-len(attributes) // cols)
    fig, axes = subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False, sharey=True)
    steps = sorted(df["step"].unique()) if "step" in df else [None]
    cmap = colormap()
    ticks = [(2 * l + k, f"{l}{'+' if k else '-'}") for l in range(n_layers) for k in (0, 1)]
    for ax, attr in zip(axes.flat, attributes):
        sub = df[df["attribute"] == attr]
        for k, s in enumerate(steps):
            part = (sub[sub["step"] == s] if s is not None else sub).sort_values("depth")
            color = cmap(k / max(len(steps) - 1, 1)) if s is not None else "C0"
            ax.plot(
                part["depth"],
                part["accuracy"],
                marker="o",
                ms=3,
                color=color,
                label=f"step {s}" if s is not None else "accuracy",
            )
        ax.plot(sub.groupby("depth")["chance"].mean(), color="grey", ls="--", label="chance")
        ax.set_title(attr, fontsize=9)
        ax.set_xticks([t for t, _ in ticks], [lab for _, lab in ticks], fontsize=7)
        ax.set_ylim(-0.02, 1.02)
    for ax in axes.flat[len(attributes) :]:
        ax.axis("off")
    axes[0, 0].set_ylabel("probe accuracy (held-out individuals)")
    axes[0, 0].legend(fontsize=6)
    fig.supxlabel("layer (- before MLP, + after MLP)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_toy_memory(dfs: dict[str, pd.DataFrame]) -> Figure:
    """Old (solid) and new (dashed) accuracy during fine-tuning, one colour per labelled run."""
    if not dfs:
        raise ValueError("dfs is empty: pass at least one {label: run_toy_memory(...) DataFrame}")
    fig, ax = subplots(figsize=(6.5, 4))
    for i, (label, df) in enumerate(dfs.items()):
        missing = set(toy_memory.COLUMNS) - set(df.columns)
        if missing:
            raise ValueError(f"dfs[{label!r}] lacks columns {sorted(missing)}; expected {toy_memory.COLUMNS}")
        ft = df[df["phase"] == "finetune"]
        color = f"C{i}"
        ax.plot(ft["step"], ft["old_accuracy"], color=color, label=f"{label}: old pairs")
        ax.plot(ft["step"], ft["new_accuracy"], color=color, ls="--", label=f"{label}: new pairs")
    ax.set_xlabel("fine-tuning step")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Toy associative memory: forgetting during fine-tuning")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig
