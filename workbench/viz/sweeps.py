"""Figures of sweeps (the tables: `workbench.sweeps.results`): the plateau scaling law, the data-distribution
trade-off, curricula, and the fine-tuning drops."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from workbench.sweeps.results import STUDY_POWER_LAW, PowerLaw, escaped, plateau_interval


def plot_scaling(table: pd.DataFrame, fit: PowerLaw | None, x: str = "data.n_individuals") -> Figure:
    """Plateau end vs N in log-log: each run with its 95% interval, the fit a * N^b, and the study's
    reported 0.43 * N^0.81 (its steps are of batch 128 biographies: compare slopes, not heights)."""
    fig = Figure(figsize=(6, 4.5), layout="constrained")
    ax = fig.subplots()
    done = table[table["status"] == "finished"]
    ok = done[escaped(done)]
    lo, hi = plateau_interval(ok)  # an interval open above is drawn up to the run's length
    err = np.vstack([ok["plateau_end"] - lo, hi - ok["plateau_end"]])
    ax.errorbar(ok[x], ok["plateau_end"], yerr=np.clip(err, 0, None), fmt="o", capsize=3, label="runs (95% CI)")
    flat = done[~done["has_plateau"].fillna(False).astype(bool)]
    if len(flat):  # runs with no plateau have no plateau end to plot: named in the legend
        counts = flat.groupby(x).size()
        ax.plot(
            [], [], "x", color="C7", label="no plateau: " + ", ".join(f"N={k:g} ({v} runs)" for k, v in counts.items())
        )
    cens = done[done["censored"].fillna(False).astype(bool)]
    if len(cens):
        ax.scatter(cens[x], cens["steps"], marker="^", color="C3", label="never escaped (run length)")
    xs = np.geomspace(done[x].min(), done[x].max(), 50) if len(done) else np.array([1.0, 2.0])
    if fit is not None:
        ax.plot(
            xs,
            fit(xs),
            "-",
            color="C0",
            label=f"fit: {fit.a:.3g} N^{fit.b:.2f} (b {fit.b_ci[0]:.2f}..{fit.b_ci[1]:.2f})",
        )
    a, b = STUDY_POWER_LAW
    ax.plot(xs, a * xs**b, "--", color="gray", label=f"study: {a} N^{b}")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="N (seen individuals)",
        ylabel="plateau end (step)",
        title="plateau length vs N",
    )
    ax.legend(fontsize=8)
    return fig


def plot_tradeoff(summary: pd.DataFrame, x: str, hue: str | None = None) -> Figure:
    """Left: plateau end vs `x` (e.g. data.sampler.alpha), one line per `hue` (e.g. N); right: final
    attribute accuracy. `summary` is `over_seeds(table)`; its 95% intervals are drawn as error bars."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_p, ax_a = fig.subplots(1, 2)
    groups = summary.groupby(hue) if hue else [(None, summary)]
    for key, g in groups:
        g = g.sort_values(x)
        label = f"{hue.rsplit('.', 1)[-1]}={key}" if hue else None
        if "plateau_end" in g:
            _with_interval(ax_p, g, x, "plateau_end", label)
        _with_interval(ax_a, g, x, "final_attribute_accuracy", label)
    name = x.rsplit(".", 1)[-1]
    ax_p.set(xlabel=name, ylabel="plateau end (step)", title=f"plateau end vs {name}")
    ax_a.set(xlabel=name, ylabel="final attribute accuracy", title="final knowledge", ylim=(0, 1.02))
    for ax in (ax_p, ax_a):
        if hue and ax.has_data():
            ax.legend(fontsize=8)
    return fig


def _with_interval(ax, g: pd.DataFrame, x: str, column: str, label: str | None) -> None:
    """`column` vs `x`, with error bars from `column`_lo/_hi where the summary has them."""
    if f"{column}_lo" not in g:
        ax.plot(g[x], g[column], marker="o", label=label)
        return
    yerr = np.vstack([g[column] - g[f"{column}_lo"], g[f"{column}_hi"] - g[column]])
    ax.errorbar(g[x], g[column], yerr=np.nan_to_num(np.clip(yerr, 0, None)), marker="o", capsize=3, label=label)


def plot_curves(table: pd.DataFrame, label: str = "trial", column: str = "attribute_loss") -> Figure:
    """The learning curves of a sweep's finished runs (e.g. uniform vs warm-up vs celebrities)."""
    from workbench.run import Run

    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for row in table[table["status"] == "finished"].itertuples(index=False):
        m = Run(row.run).metrics
        ax.plot(m["step"], m[column], label=str(getattr(row, label)))
        baseline = float(m["no_knowledge_baseline"].iloc[0])
    if ax.has_data():
        ax.axhline(baseline, color="k", ls=":", lw=1, label="no-knowledge baseline")
        ax.legend(fontsize=8)
    ax.set(xlabel="step", ylabel=column.replace("_", " "), yscale="log")
    return fig


def plot_finetune_drops(drops: pd.DataFrame, x: str = "finetune.n_new", hue: str = "finetune.replay_weight") -> Figure:
    """Initial and final drop of seen-individual accuracy vs the number of new individuals, per replay weight."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, col, title in zip(axes, ("initial_drop", "final_drop"), ("initial drop (first quarter)", "final drop")):
        for key, g in drops.groupby(hue):
            g = g.sort_values(x)
            ax.plot(g[x], g[col], marker="o", label=f"replay {key:g}")
        ax.set(xlabel="new individuals", ylabel="seen accuracy lost", title=title, xscale="log")
        ax.legend(fontsize=8)
    return fig


def plot_finetune_summary(summary: pd.DataFrame) -> Figure:
    """`finetune_summary`: initial and final drop vs replay weight (log scale; no replay drawn at the left edge),
    one line per number of new individuals, with 95% intervals over bases."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    weights = summary["replay_weight"]
    none_at = weights[weights > 0].min() / 4 if (weights > 0).any() else 1.0
    for ax, col, title in zip(axes, ("initial_drop", "final_drop"), ("initial drop (first quarter)", "final drop")):
        for n_new, g in summary.groupby("n_new"):
            g = g.sort_values("replay_weight")
            x = g["replay_weight"].where(g["replay_weight"] > 0, none_at)
            err = np.vstack([g[col] - g[f"{col}_lo"], g[f"{col}_hi"] - g[col]])
            ax.errorbar(x, g[col], yerr=np.clip(err, 0, None), marker="o", capsize=3, label=f"{n_new:g} new")
        ax.axvline(none_at * 2, color="0.8", lw=0.8)
        ax.set(xscale="log", xlabel="replay weight (left of the line: none)", ylabel="seen accuracy lost", title=title)
        ax.legend(fontsize=8)
    return fig
