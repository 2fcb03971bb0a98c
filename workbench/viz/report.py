"""`write_report(run)`: one self-contained offline HTML page per run.

A table of contents, the summary and config, links to the run's files, one place per curve (held-out
individuals' curves only in the hallucination panel), and, when the run holds them, its data attributions
and retrieval studies. Figures are embedded as base64 PNGs and circuitsvis views with their JavaScript bundle inlined,
so opening the file fetches nothing from the network. Each section is a function of the run that
returns HTML; a section that fails is reported in the page instead of aborting the report.
"""

from __future__ import annotations

import html
import json
import math
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from workbench.atomic import atomic_write_text
from workbench.viz.attention import plot_attention_over_training
from workbench.viz.figures import plot_per_attribute, plot_phases, png_base64

Section = Callable[["object"], str]


def figure_html(fig, alt: str) -> str:
    data = png_base64(fig, dpi=110)
    return f'<img class="figure" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _fmt(x) -> str:
    if isinstance(x, float):
        return "n/a" if math.isnan(x) else f"{x:.4g}"
    return html.escape(str(x))


def summary_section(run) -> str:
    ph, last, cfg = run.phases(), run.metrics.iloc[-1], run.config
    rows = {
        "preset": cfg.preset,
        "seed": cfg.seed,
        "status": run.status,
        "individuals (seen / held-out)": f"{cfg.data.n_individuals} / {cfg.data.n_heldout}",
        "model": f"{cfg.model.n_layers} layers, d_model {cfg.model.d_model}, {cfg.model.n_heads} heads x "
        f"{cfg.model.d_head}, MLP {cfg.model.d_mlp}",
        "training": f"{cfg.train.steps} steps, batch {cfg.train.batch_size}, peak lr {cfg.train.lr}",
        "wall time (s)": round(run.dir.manifest().get("wall_s", 0.0), 1),
        "no-knowledge baseline (nats)": float(last["no_knowledge_baseline"]),
        "plateau (workbench.phases)": ph.describe(),
        "final attribute loss / accuracy (seen)": f"{_fmt(float(last['attribute_loss']))} / "
        f"{_fmt(float(last['attribute_accuracy']))}",
    }
    if "heldout_attribute_loss" in last:
        rows["final attribute loss / accuracy (held-out)"] = (
            f"{_fmt(float(last['heldout_attribute_loss']))} / {_fmt(float(last['heldout_attribute_accuracy']))}"
        )
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in rows.items())
    return f'<table class="summary">{body}</table><p class="note">{html.escape(ph.rule.describe())}</p>'


def phases_section(run) -> str:
    return figure_html(plot_phases(run, heldout=False), "attribute loss and accuracy over training (seen)")


RUN_FILES = ("config.json", "manifest.json", "metrics.csv", "tokenizer.json")


def files_section(run, out: Path | None = None) -> str:
    """Links to the run's files (relative to the report) and its config, folded."""
    where = (out or run.path / "report.html").parent
    links = " · ".join(
        f'<a href="{html.escape(os.path.relpath(run.path / n, where))}">{n}</a>'
        for n in RUN_FILES
        if (run.path / n).exists()
    )
    extra = [d for d in ("attribution", "retrieval") if (run.path / d).is_dir()]
    extra_links = "".join(f' · <a href="{html.escape(os.path.relpath(run.path / d, where))}/">{d}/</a>' for d in extra)
    config = html.escape(json.dumps(run.config.to_dict(), indent=2))
    return (
        f"<p>Run directory <code>{html.escape(str(run.path))}</code>: {links}{extra_links}</p>"
        f"<details><summary>config (config.json)</summary><pre>{config}</pre></details>"
    )


def attribution_section(run) -> str:
    """Each saved data attribution of the run: influence by step and its distribution."""
    from workbench.attribution.window import load_attribution
    from workbench.viz.attribution import plot_influence

    parts = []
    for meta in sorted((run.path / "attribution").glob("*/attribution.json")):
        a = load_attribution(meta.parent)
        c = a.config
        parts.append(
            f"<h3>{html.escape(meta.parent.name)}</h3><p class='note'>head L{c.layer}H{c.head}, measure "
            f"{c.measure} at step {c.step}, window [{c.start}, {c.end}); influence &gt; 0 promotes the head</p>"
            + figure_html(plot_influence(a.sequences, a.aggregate("step")), "influence of training sequences")
        )
    return "".join(parts)


def retrieval_section(run) -> str:
    """Each saved retrieval study of the run: accuracy by mode, the multiplier, held-out hallucination."""
    from workbench.retrieval.study import load_retrieval
    from workbench.viz.retrieval import plot_retrieval

    parts = []
    for meta in sorted((run.path / "retrieval").glob("*/retrieval.json")):
        study = load_retrieval(meta.parent)
        store = study.meta["datastore"]
        parts.append(
            f"<h3>{html.escape(meta.parent.name)}</h3><p class='note'>{store['documents']} documents, "
            f"recall@1 by name {store['name_recall_at_1']:.3f}; m={study.config.m}, votes={study.config.votes}</p>"
            + figure_html(plot_retrieval(study, run), "accuracy with and without retrieval, multiplier")
        )
    return "".join(parts)


def per_attribute_section(run) -> str:
    return figure_html(plot_per_attribute(run), "per-attribute loss and accuracy")


def hallucination_section(run) -> str:
    from workbench.viz.hallucination import plot_hallucination

    return figure_html(plot_hallucination(run), "seen vs held-out individuals: loss, accuracy, confidence")


def name_attention_section(run) -> str:
    """Name-token attention over checkpoints (docs/method.md §4.4), with the plateau boundaries."""
    from workbench.attention import attention_over_training

    df = attention_over_training(run, size=min(128, run.config.train.eval_size), progress=False)
    phases = run.phases()
    figs = [
        plot_attention_over_training(df, "name->name", "first", phases),
        plot_attention_over_training(df, "attribute->name", "last", phases),
        plot_attention_over_training(df, "attribute->text", "last", phases),
    ]
    return "".join(figure_html(f, "name-token attention over training") for f in figs)


def attention_views_section(run) -> str:
    """circuitsvis views of one biography's last-layer attention before, during, after the plateau."""
    from workbench.viz.attention_views import biography_html, phase_views, views_html

    text = biography_html(run.data, run.data.eval_batch("seen", 256), 0)  # the biography phase_views shows
    return (
        "<p class='note'>Last layer; token labels mark names as [..] and attribute values as &lt;..&gt;. "
        "Interactive: hover a token to see where it attends. The biography:</p>"
        f"<blockquote class='biography'>{text}</blockquote>" + views_html(phase_views(run))
    )


def default_sections(run=None) -> list[tuple[str, Section]]:
    """The report's sections, in order (title, function of the run -> HTML); with `run`, also its data
    attributions and retrieval studies when it holds any."""
    optional = []
    if run is not None and list((run.path / "attribution").glob("*/attribution.json")):
        optional.append(("Data attribution", attribution_section))
    if run is not None and list((run.path / "retrieval").glob("*/retrieval.json")):
        optional.append(("Retrieval and the compute multiplier", retrieval_section))
    return [
        ("Summary", summary_section),
        ("Files and config", files_section),
        ("The three phases", phases_section),
        ("Per attribute", per_attribute_section),
        ("Hallucinations", hallucination_section),
        ("Name-token attention", name_attention_section),
        ("Attention before, during and after the plateau", attention_views_section),
        *optional,
    ]


_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table.summary th{text-align:left;padding-right:2em;font-weight:600}img.figure{max-width:100%}
.banner{background:#fff3cd;border:1px solid #e0b000;padding:.5em;font-weight:600}
.note{color:#666;font-size:.9em}nav.toc ol{columns:2}pre{font-size:.8em;background:#f6f6f6;padding:.5em}.error{color:#b00;white-space:pre-wrap;font-family:monospace;font-size:.8em}"""  # noqa: E501


class ReportIncomplete(ValueError):
    """`write_report(..., strict=True)`: the report was written, but some of its sections failed."""


def check_inputs(run) -> None:
    """The run files every section reads (manifest, metrics, evaluation scores), checked before any figure is
    computed: a ValueError naming the file that is broken, or saying the run has no evaluation yet."""
    run.dir.manifest()
    if run.metrics.empty or "attribute_loss" not in run.metrics:
        raise ValueError(
            f"run {run.path} has no evaluation yet ({run.dir.metrics_path.name} has no attribute_loss "
            f"rows): allowed a run evaluated at least once"
        )
    if "loss" not in run.dir.read_scores():
        raise ValueError(
            f"run {run.path} has no evaluation scores ({run.dir.scores_path.name}): allowed a run "
            f"evaluated at least once"
        )


def partial_note(run) -> str:
    """'' for a finished run, else one line: its status and the step it saved vs the steps planned."""
    from workbench.training.rundir import saved_step

    status, planned = run.status, run.config.train.steps
    if status == "finished":
        return ""
    step = saved_step(run.dir.manifest())
    return (
        f"Partial run: status {status}, trained to step {step if step is not None else 0} of {planned} planned "
        f"steps; the curves stop there (continue it with: workbench train --resume {run.path})"
    )


def write_report(
    run, out: str | os.PathLike | None = None, sections: list[tuple[str, Section]] | None = None, strict: bool = False
) -> Path:
    """Write the run's report (default: <run>/report.html) atomically and return its path. Broken run files
    raise a ValueError naming the file before anything is computed or written (`check_inputs`). A section that
    fails shows its error in one line and the page says at its top that it is incomplete; with `strict` the
    report is still written, then `ReportIncomplete` (a ValueError) names the failed sections. A partial run
    (stopped, failed, interrupted) says so at the top of the page."""
    from workbench import debug

    out = Path(out) if out is not None else run.path / "report.html"
    check_inputs(run)
    parts, toc, failed = [], [], []
    for title, section in sections or default_sections(run):
        try:
            body = section(run, out) if section is files_section else section(run)
        except Exception as e:  # a broken section must not lose the rest of the report
            if debug.enabled():
                traceback.print_exc()
            error = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"
            failed.append((title, error))
            body = f'<div class="error">section failed: {html.escape(error)}</div>'
        slug = html.escape(title.lower().replace(" ", "-").replace(",", ""))
        toc.append(f'<li><a href="#{slug}">{html.escape(title)}</a></li>')
        parts.append(f'<section id="{slug}"><h2>{html.escape(title)}</h2>{body}</section>')
    banners = []
    if failed:
        banners.append(f"INCOMPLETE REPORT: {len(failed)} section(s) failed: {', '.join(t for t, _ in failed)}")
    if partial_note(run):
        banners.append(partial_note(run))
    top = "".join(f"<p class='banner'>{html.escape(b)}</p>" for b in banners)
    written = time.strftime("%Y-%m-%d %H:%M:%S")
    title = ("[incomplete] " if failed else "") + ("[partial] " if partial_note(run) else "") + run.name
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>workbench report: {html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>{top}<h1>workbench report: {html.escape(run.name)}</h1>"
        f"<p class='note'>{html.escape(run.config.preset)} preset, seed {run.config.seed}; written {written}</p>"
        f"<nav class='toc'><h2>Contents</h2><ol>{''.join(toc)}</ol></nav>{''.join(parts)}</body></html>"
    )
    atomic_write_text(out, page)
    if failed and strict:
        title, error = failed[0]
        raise ReportIncomplete(
            f"report {out} is incomplete: {len(failed)} section(s) failed, first {title!r} "
            f"({error}); rerun with --debug for the traceback"
        )
    return out
