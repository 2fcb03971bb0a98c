"""Static matplotlib figures of a run: the three phases, accuracy, per-attribute curves."""

from __future__ import annotations

import math
from typing import Any

import matplotlib
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, SymmetricalLogLocator

from workbench.phases import Phases


def subplots(
    nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6.4, 4.8), **kw: Any
) -> tuple[Figure, Any]:
    """A Figure and its axes without pyplot: no backend is chosen or switched on import, and no global
    registry keeps figures alive. Jupyter shows a returned Figure inline; `fig.savefig` writes it."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kw)


def colormap(name: str = "viridis") -> Colormap:
    return matplotlib.colormaps[name]


def png_bytes(fig: Figure, dpi: int = 100, colors: int = 96) -> bytes:
    """The figure as a palette PNG (`colors` colours, via Pillow): a third the bytes of matplotlib's RGBA PNG
    for heatmaps and curves, which is what keeps figures embedded in notebooks and widgets small."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    image = Image.open(io.BytesIO(buf.getvalue())).convert("RGB").quantize(colors)
    out = io.BytesIO()
    image.save(out, format="png", optimize=True)
    return out.getvalue()


def png_base64(fig: Figure, dpi: int = 100) -> str:
    """`png_bytes`, base64-encoded (for data: URIs and Jupyter's image/png)."""
    import base64

    return base64.b64encode(png_bytes(fig, dpi)).decode()


PLAIN = FuncFormatter(lambda v, _: f"{v:g}")  # 0.5, 20, 1000 rather than 5x10^-1, 2x10^1, 10^3


def log_steps(ax, eval_every: int) -> None:
    """Steps on a log scale that still shows step 0 (symlog, linear below one evaluation interval), with
    ticks at 1, 2, 5 x 10^k labelled as plain numbers."""
    linthresh = max(eval_every, 1)
    ax.set_xscale("symlog", linthresh=linthresh)
    ax.xaxis.set_major_locator(SymmetricalLogLocator(base=10, linthresh=linthresh, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(PLAIN)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(left=0)
    ax.set_xlabel("training step")


def log_values(ax) -> None:
    """A log y axis with ticks at 1, 2, 5 x 10^k labelled as plain numbers."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(PLAIN)
    ax.yaxis.set_minor_formatter(NullFormatter())


def mark_phases(ax, phases: Phases | None) -> None:
    """Vertical lines (and shaded 95% intervals) at the detected plateau start and end."""
    if phases is None:
        return
    for x, ci, label in (
        (phases.plateau_start, phases.plateau_start_ci, "plateau start"),
        (phases.plateau_end, phases.plateau_end_ci, "plateau end"),
    ):
        if not math.isnan(x):
            ax.axvline(x, color="grey", ls="--", lw=1, label=label)
            if all(math.isfinite(c) for c in ci) and ci[1] > ci[0]:
                ax.axvspan(ci[0], ci[1], color="grey", alpha=0.12)


def plot_phases(run, phases: Phases | None = None, heldout: bool = True) -> Figure:
    """Attribute loss and accuracy vs steps, with the baseline: seen individuals, and held-out ones unless
    `heldout` is False (the report shows those once, in its hallucination panel)."""
    m, ev = run.metrics, run.config.train.eval_every
    phases = phases if phases is not None else run.phases()
    fig, (ax_l, ax_a) = subplots(1, 2, figsize=(11, 4))
    ax_l.plot(m["step"], m["attribute_loss"], label="seen individuals (eval templates)", color="C0")
    if heldout and "heldout_attribute_loss" in m:
        ax_l.plot(m["step"], m["heldout_attribute_loss"], label="held-out individuals", color="C3", alpha=0.8)
    ax_l.axhline(m["no_knowledge_baseline"].iloc[0], color="k", lw=1, label="no-knowledge baseline")
    ax_l.set_ylabel("attribute loss (nats per value)")
    log_values(ax_l)
    ax_a.plot(m["step"], m["attribute_accuracy"], label="seen individuals", color="C0")
    if heldout and "heldout_attribute_accuracy" in m:
        ax_a.plot(m["step"], m["heldout_attribute_accuracy"], label="held-out individuals", color="C3", alpha=0.8)
    ax_a.set_ylabel("attribute accuracy")
    ax_a.set_ylim(-0.02, 1.02)
    for ax in (ax_l, ax_a):
        log_steps(ax, ev)
        mark_phases(ax, phases)
        ax.grid(alpha=0.3)
    ax_l.legend(fontsize=8)
    ax_a.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"{run.name}: the three phases of knowledge acquisition")
    fig.tight_layout()
    return fig


def plot_per_attribute(run, prefix: str = "") -> Figure:
    """Attribute loss and accuracy per attribute type (seen individuals by default)."""
    m, attrs = run.metrics, run.config.data.attributes
    fig, (ax_l, ax_a) = subplots(1, 2, figsize=(11, 4))
    for i, a in enumerate(attrs):
        ax_l.plot(m["step"], m[f"{prefix}attribute_loss/{a}"], color=f"C{i}", label=a)
        ax_a.plot(m["step"], m[f"{prefix}attribute_accuracy/{a}"], color=f"C{i}", label=a)
        ax_l.axhline(math.log(run.config.data.n_values[a]), color=f"C{i}", lw=0.8, ls=":")
    ax_l.set_ylabel("attribute loss (dotted: log #values)")
    log_values(ax_l)
    ax_a.set_ylabel("attribute accuracy")
    for ax in (ax_l, ax_a):
        log_steps(ax, run.config.train.eval_every)
        ax.grid(alpha=0.3)
    ax_a.legend(fontsize=8)
    fig.suptitle(f"{run.name}: per attribute")
    fig.tight_layout()
    return fig
