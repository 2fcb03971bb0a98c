"""Figures of a retrieval study: accuracy by mode across training, the multiplier, held-out hallucination."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from workbench.viz.figures import PLAIN, mark_phases, subplots

MODE_STYLE = {
    "none": ("black", "no retrieval"),
    "bm25": ("tab:blue", "BM25 top-m"),
    "oracle": ("tab:green", "oracle documents"),
    "vote": ("tab:orange", "self-consistency vote"),
}


def plot_retrieval(study, run=None) -> Figure:
    """Three panels: seen accuracy per mode over checkpoints (95% bootstrap bands, the plateau marked when
    `run` is given); each mode's multiplier (log scale; open markers: a bound, beyond or below the run);
    held-out individuals' value confidence and copy rate with and without retrieval."""
    fig, (acc, mult, held) = subplots(1, 3, figsize=(15, 4.2))
    phases = run.phases() if run is not None else None
    s = study.summary
    for mode, (color, label) in MODE_STYLE.items():
        g = s[(s["group"] == "seen") & (s["mode"] == mode)].sort_values("step")
        if len(g):
            acc.plot(g["step"], g["accuracy"], "o-", color=color, label=label, ms=3)
            acc.fill_between(g["step"], g["accuracy_lo"], g["accuracy_hi"], color=color, alpha=0.15)
    mark_phases(acc, phases)
    acc.set(
        xlabel="training step",
        ylabel="attribute accuracy (seen, evaluation templates)",
        title="accuracy with and without retrieval",
    )
    acc.legend(fontsize=8)

    mt = study.multipliers
    for mode, (color, label) in MODE_STYLE.items():
        g = mt[(mt["mode"] == mode) & (mt["step"] > 0)].sort_values("step")
        if not len(g):
            continue
        within = g["status"] == "within"
        # a bound (beyond / below the baseline curve) is no value: open markers at the bound (older studies: at
        # the multiplier column, which then held it); an interval open at the top is drawn up to 10x the value
        bound = g["bound"] if "bound" in g else g["multiplier"]
        value = g["multiplier"].where(within, bound)
        mult.plot(g["step"], value, "-", color=color, alpha=0.6)
        hi = g["multiplier_hi"][within].clip(upper=10 * g["multiplier"][within])
        mult.errorbar(
            g["step"][within],
            g["multiplier"][within],
            yerr=np.abs(np.stack([g["multiplier"][within] - g["multiplier_lo"][within], hi - g["multiplier"][within]])),
            fmt="o",
            color=color,
            ms=4,
            capsize=2,
            label=label,
        )
        mult.plot(g["step"][~within], bound[~within], "o", mfc="none", color=color, ms=6)
    mult.axhline(1, color="grey", lw=0.8)
    mark_phases(mult, phases)
    mult.set_yscale("log")
    mult.yaxis.set_major_formatter(PLAIN)
    mult.yaxis.set_minor_formatter(PLAIN)
    mult.set(xlabel="training step", ylabel="multiplier s*/s", title="compute multiplier (open: a bound)")
    mult.legend(fontsize=8)

    for mode, ls in (("none", "-"), ("bm25", "--")):
        g = s[(s["group"] == "heldout") & (s["mode"] == mode)].sort_values("step")
        if len(g):
            held.plot(g["step"], g["top_probability"], ls, color="tab:red", label=f"confidence, {MODE_STYLE[mode][1]}")
            if g["copied"].notna().any():
                held.plot(g["step"], g["copied"], ls, color="tab:purple", label=f"copies retrieved value ({mode})")
    held.set(xlabel="training step", ylabel="share / probability", title="held-out individuals (hallucination)")
    held.legend(fontsize=8)
    fig.tight_layout()
    return fig
