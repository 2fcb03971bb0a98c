"""circuitsvis views of a biography's attention at chosen checkpoints, and offline HTML files.

Token labels mark the study's roles: name tokens as ``[ Smith]``, attribute-value tokens as
``< Paris>``, so a view shows at a glance where the name and the values are.

`RenderedHTML` keeps two renderings: ``local_src`` (the circuitsvis JavaScript bundle inlined)
and ``cdn_src`` (loads the bundle from unpkg.com; also what ``str(view)`` gives).
`save_offline_html` writes one page with the bundle inlined once, as a classic script defining
the global ``CircuitsVis``, followed by each view's ``CircuitsVis.render(...)`` call.

In Jupyter a view does the same across a notebook: `load_circuitsvis()` (displayed once, near the top) defines
``CircuitsVis`` from the inlined bundle (~1.3 MB, so once per notebook, not per view), and each view waits for
it, then renders; a view displayed before any load in the kernel carries the bundle itself. Inside each view's
<div> sits a static PNG of its heads' patterns, which the interactive view replaces: an untrusted notebook (its
scripts not run, e.g. executed elsewhere and reopened; `jupyter trust` makes it trusted) still shows the patterns.
Attention values are rounded to 3 decimals. In a notebook a view's numbers (its weight: 60 KB of JSON for 2 heads
x 62 tokens) travel packed: the causal lower triangle as little-endian uint16 thousandths, base64, unpacked by the
view's script into the same nested array (`pack_attention`; 5x smaller). Offline pages keep circuitsvis's JSON.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from circuitsvis.attention import attention_heads
from circuitsvis.utils import render as cv_render
from circuitsvis.utils.render import RenderedHTML
from matplotlib.figure import Figure

from workbench.atomic import atomic_write_text
from workbench.attention import resolve_layer
from workbench.data.batch import Batch
from workbench.data.biography_data import BiographyData
from workbench.data.kinds import token_labels
from workbench.viz.figures import png_base64, subplots

_LOADED = {"bundle": False}  # whether this kernel displayed the bundle (load_circuitsvis or a first view)


class BundleLoader:
    """Displays the circuitsvis bundle as a classic script (the global ``CircuitsVis``), once per notebook."""

    def _repr_html_(self) -> str:
        _LOADED["bundle"] = True
        return (
            f"<script>{_bundle().split('//# sourceMappingURL=')[0]}</script>"
            "<div class='circuitsvis-loaded' style='color:#666;font-size:.85em'>circuitsvis loaded</div>"
        )


def load_circuitsvis() -> BundleLoader:
    """Display this once near a notebook's top: every attention view below renders from it (module docstring)."""
    return BundleLoader()


_RENDER_CALL = re.compile(r"CircuitsVis\.render\(\s*\"(?P<id>[^\"]+)\",(?P<rest>.*)\)\s*</script>\s*$", re.S)


# The inverse of `pack_attention`, in the view's script: [head][query][key] with zeros above the diagonal.
_UNPACK = (
    "((b64, heads, n) => { const d = new DataView(Uint8Array.from(atob(b64), c => c.charCodeAt(0)).buffer); "
    "let i = 0; return Array.from({length: heads}, () => Array.from({length: n}, (_, q) => "
    "Array.from({length: n}, (_, k) => k <= q ? d.getUint16(2 * i++, true) / 1000 : 0))); })"
)


def pack_attention(patterns: torch.Tensor) -> str | None:
    """Causal patterns [head, q, k] as base64 little-endian uint16 thousandths of the lower triangle (q >= k),
    head by head, row by row; None where a pattern is not causal (then the view keeps the JSON)."""
    import base64

    p = patterns.double().numpy()
    if np.triu(p, 1).any():
        return None
    q, k = np.tril_indices(p.shape[-1])
    return base64.b64encode(np.rint(p[:, q, k] * 1000).astype("<u2").tobytes()).decode()


class OfflineView(RenderedHTML):
    """A circuitsvis view that Jupyter renders offline, sharing one bundle per notebook (module docstring)."""

    fallback_png: str = ""  # base64 PNG of the patterns, shown until (or unless) the script renders
    packed: tuple[str, int, int, dict] | None = None  # (pack_attention, heads, n, the other props) for notebooks

    def _repr_html_(self) -> str:
        call = _RENDER_CALL.search(self.local_src)
        if call is None:  # not the markup this module knows: the view as circuitsvis made it
            return self.local_src
        uid, rest = call["id"], call["rest"]
        if self.packed is not None:
            b64, heads, n, props = self.packed
            rest = (
                f'CircuitsVis.AttentionHeads, Object.assign({{attention: {_UNPACK}("{b64}", {heads}, {n})}}, '
                f"{json.dumps(props)})"
            )
        bundle = "" if _LOADED["bundle"] else BundleLoader()._repr_html_()
        static = (
            f'<img alt="attention patterns (static; the interactive view needs the notebook trusted)" '
            f'style="max-width:100%" src="data:image/png;base64,{self.fallback_png}">'
            if self.fallback_png
            else ""
        )
        wait = (
            f'const draw = (n) => window.CircuitsVis ? CircuitsVis.render("{uid}",{rest}) : n > 0 ? '
            f'setTimeout(() => draw(n - 1), 50) : (document.getElementById("{uid}").insertAdjacentHTML('
            f'"beforeend", "<p>circuitsvis is not loaded: run the cell with load_circuitsvis()</p>"));'
            f"draw(200);"
        )
        return f'{bundle}<div id="{uid}" style="margin: 15px 0;">{static}</div><script type="module">{wait}</script>'


def _tokenizer(data_or_tokenizer):
    """The BiographyTokenizer of a BiographyData (or the tokenizer itself)."""
    tok = data_or_tokenizer.tokenizer if isinstance(data_or_tokenizer, BiographyData) else data_or_tokenizer
    if not hasattr(tok, "token_strings"):
        raise ValueError(
            f"data_or_tokenizer={type(data_or_tokenizer).__name__}: allowed a BiographyData or a BiographyTokenizer"
        )
    return tok


@torch.no_grad()
def row_pattern(model, batch: Batch, row: int, layer: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(pattern [head, q, k], tokens, kinds) of one biography (padding stripped) at one layer."""
    if not 0 <= row < len(batch):
        raise ValueError(f"row={row!r} is out of range: allowed [0, {len(batch)})")
    real = batch.mask[row]
    tokens, kinds = batch.tokens[row][real], batch.kind[row][real]
    device = next(model.parameters()).device
    name = f"blocks.{layer}.attn.hook_pattern"
    _, cache = model.run_with_cache(tokens[None].to(device), names_filter=lambda n: n == name)
    return cache[name][0].float().cpu(), tokens, kinds


def attention_view(
    model, data_or_tokenizer, batch: Batch, row: int = 0, layer: int | str = "last", heads: list[int] | None = None
) -> RenderedHTML:
    """A circuitsvis `attention_heads` view of biography `row` of `batch` at one layer.

    data_or_tokenizer: a `BiographyData` or its `BiographyTokenizer` (to label the tokens);
    layer: 'first', 'last' or an index; heads: a subset of heads (default all).
    """
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    layer = resolve_layer(layer, n_layers)
    heads = list(range(n_heads)) if heads is None else list(heads)
    bad = [h for h in heads if not (isinstance(h, int) and 0 <= h < n_heads)]
    if bad or not heads:
        raise ValueError(f"heads={heads!r} is out of range: allowed a non-empty list of ints in [0, {n_heads})")
    pattern, tokens, kinds = row_pattern(model, batch, row, layer)
    labels = token_labels(_tokenizer(data_or_tokenizer), tokens, kinds)
    names = [f"L{layer}H{h}" for h in heads]
    view = attention_heads(
        attention=np.round(pattern[heads].double().numpy(), 3),
        tokens=labels,
        attention_head_names=names,
        mask_upper_tri=True,
    )
    out = OfflineView(view.local_src, view.cdn_src)
    out.fallback_png = _patterns_png(pattern[heads], names)
    packed = pack_attention(pattern[heads])
    if packed is not None:
        out.packed = (
            packed,
            len(heads),
            len(labels),
            {"tokens": labels, "attentionHeadNames": names, "maskUpperTri": True},
        )
    return out


def _patterns_png(patterns: torch.Tensor, names: list[str]) -> str:
    """A small static grid of the heads' patterns [head, q, k] (base64 PNG), the views' fallback."""
    n = len(names)
    fig, axes = subplots(1, n, figsize=(1.6 * n, 1.8), squeeze=False)
    for ax, p, name in zip(axes[0], patterns, names):
        ax.imshow(p.numpy(), cmap="Blues", vmin=0, vmax=1)
        ax.set(title=name, xticks=[], yticks=[])
    return png_base64(fig, dpi=60)  # a thumbnail: the interactive view is the real one


def biography_html(data, batch, row: int = 0) -> str:
    """A biography's text with its name tokens and attribute values highlighted (the study's token roles)."""
    from workbench.data.kinds import NAME, VALUE

    style = {NAME: "background:#cfe3ff;font-weight:600", VALUE: "background:#ffe1c2;font-weight:600"}
    n = int(batch.mask[row].sum())
    pieces = data.tokenizer.token_strings(batch.tokens[row, 1:n].tolist())
    out = [
        f'<span style="{style[k]}">{html.escape(p)}</span>' if k in style else html.escape(p)
        for p, k in zip(pieces, batch.kind[row, 1:n].tolist())
    ]
    legend = f'<span style="{style[NAME]}">name</span> <span style="{style[VALUE]}">attribute value</span>'
    return f'<div style="line-height:1.6">{"".join(out)}</div><div style="font-size:.85em;color:#666">{legend}</div>'


def phase_steps(run) -> dict[str, int]:
    """Three checkpoints: before, during and after the plateau (from `run.phases()`).

    before: the last checkpoint before the plateau start; during: the one nearest the plateau's
    middle; after: the first one at or after the plateau end. Where a boundary is nan (not
    reached) or two choices coincide, falls back to the first, middle and last checkpoints, and
    the keys say so ("first checkpoint", ...).
    """
    steps = run.checkpoint_steps
    if not steps:
        raise ValueError(f"run {run.path} has no checkpoints")
    fallback = {"first checkpoint": steps[0], "middle checkpoint": steps[len(steps) // 2], "last checkpoint": steps[-1]}
    try:
        ph = run.phases()
        start, end = ph.plateau_start, ph.plateau_end
    except ValueError:
        start = end = math.nan
    if math.isnan(start) or math.isnan(end):
        return fallback
    chosen = {
        "before the plateau": max([s for s in steps if s < start], default=steps[0]),
        "during the plateau": min(steps, key=lambda s: abs(s - (start + end) / 2)),
        "after the plateau": min([s for s in steps if s >= end], default=steps[-1]),
    }
    return chosen if len(set(chosen.values())) == 3 else fallback


def phase_views(
    run,
    steps: list[int] | None = None,
    layer: int | str = "last",
    row: int = 0,
    heads: list[int] | None = None,
    size: int = 256,
) -> dict[str, RenderedHTML]:
    """Views of biography `row` of the run's evaluation set at several checkpoints.

    Default steps: before / during / after the plateau (`phase_steps`); the keys say which
    ("before the plateau (step 120)", "first checkpoint (step 0)", or "step 120" for explicit steps).
    """
    if steps is None:
        labelled = {f"{k} (step {s})": s for k, s in phase_steps(run).items()}
    else:
        bad = [s for s in steps if s not in run.checkpoint_steps]
        if bad or not steps:
            raise ValueError(
                f"steps={bad or steps} have no checkpoint in run {run.path}: allowed {run.checkpoint_steps}"
            )
        labelled = {f"step {s}": s for s in steps}
    if not 0 <= row < size:
        raise ValueError(f"row={row!r} is out of range: allowed [0, size={size})")
    batch = run.data.eval_batch("seen", size)[row : row + 1]
    return {label: attention_view(run.load_model(s), run.data, batch, 0, layer, heads) for label, s in labelled.items()}


# ---------------------------------------------------------------------------------------------
# offline HTML


@lru_cache(maxsize=1)
def _bundle() -> str:
    """The circuitsvis bundle exactly as `render_local` inlines it."""
    path = Path(cv_render.__file__).parent.parent / "dist" / "cdn" / "iife.js"
    return path.read_text(encoding="utf-8").replace("</script>", "")


_SELF_CLOSING_DIV = re.compile(r'^\s*(<div id="circuits-vis-[^"]*"[^>]*?)\s*/>')


def views_html(views: dict[str, RenderedHTML] | RenderedHTML) -> str:
    """An HTML fragment with the circuitsvis bundle inlined once and every view after it (titled)."""
    views = {"": views} if isinstance(views, RenderedHTML) else dict(views)
    if not views or not all(isinstance(v, RenderedHTML) for v in views.values()):
        raise ValueError("views must be a RenderedHTML or a non-empty dict of title -> RenderedHTML")
    bundle = _bundle()
    shared = all(bundle in v.local_src for v in views.values())
    parts = [f"<script>{bundle.split('//# sourceMappingURL=')[0]}</script>"] if shared else []
    for title, view in views.items():
        src = view.local_src.replace(bundle, "") if shared else view.local_src
        src = _SELF_CLOSING_DIV.sub(r"\1></div>", src)  # <div/> is not self-closing in HTML
        head = f"<h2>{html.escape(title)}</h2>" if title else ""
        parts.append(f'<div class="circuitsvis-view">{head}{src}</div>')
    return "\n".join(parts)


def save_offline_html(
    views: dict[str, RenderedHTML] | RenderedHTML, path: str | os.PathLike, title: str = "attention"
) -> Path:
    """Write one self-contained HTML page of circuitsvis views (nothing fetched); atomic."""
    path = Path(path)
    body = views_html(views)
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body style='font-family:system-ui,sans-serif'><h1>{html.escape(title)}</h1>\n{body}\n</body></html>"
    )
    atomic_write_text(path, page)
    return path


# ---------------------------------------------------------------------------------------------
# static fallback


def plot_pattern(pattern, token_labels: list[str], title: str | None = None) -> Figure:
    """A matplotlib heatmap of one attention pattern [query, key] (for the static report)."""
    a = np.asarray(pattern.detach().cpu() if torch.is_tensor(pattern) else pattern, dtype=float)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] != len(token_labels):
        raise ValueError(
            f"pattern has shape {a.shape}: expected [n, n] with n = len(token_labels) = {len(token_labels)}"
        )
    n = len(token_labels)
    size = min(max(4.0, 0.16 * n + 1.5), 24.0)
    fig, ax = subplots(figsize=(size + 1.0, size))
    im = ax.imshow(a, cmap="Blues", vmin=0.0, vmax=max(float(a.max()), 1e-9))
    ax.set_xticks(range(n), token_labels, rotation=90, fontsize=6)
    ax.set_yticks(range(n), token_labels, fontsize=6)
    ax.set_xlabel("key (attended token)")
    ax.set_ylabel("query")
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    fig.tight_layout()
    return fig
