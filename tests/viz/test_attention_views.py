"""circuitsvis attention views: marked token labels, phase steps, offline HTML, static heatmap."""

import html as html_module
import json
import os
import re

import numpy as np
import pytest
import torch
from browser import rendered_dom
from circuitsvis.utils.render import RenderedHTML

from workbench.data.kinds import NAME, VALUE
from workbench.phases import Phases
from workbench.viz import attention_views
from workbench.viz.attention_views import (
    attention_view,
    pack_attention,
    phase_steps,
    phase_views,
    plot_pattern,
    save_offline_html,
    token_labels,
)

REMOTE = re.compile(r"<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*[\"']?\s*(https?:)?//", re.I)


@pytest.fixture(scope="module")
def batch(tiny_run):
    return tiny_run.data.eval_batch("seen", 4)


@pytest.fixture(scope="module")
def views(tiny_run, batch):
    model = tiny_run.load_model()
    return {
        "all heads": attention_view(model, tiny_run.data, batch, row=1, layer="last"),
        "head 1 <first layer>": attention_view(model, tiny_run.tokenizer, batch, row=1, layer=0, heads=[1]),
    }


def marked_labels(run, batch, row):
    real = batch.mask[row]
    strings = run.tokenizer.token_strings(batch.tokens[row][real].tolist())
    kinds = batch.kind[row][real].tolist()
    return strings, kinds


def test_token_labels_mark_names_and_values(tiny_run, batch):
    strings, kinds = marked_labels(tiny_run, batch, 0)
    labels = token_labels(tiny_run.tokenizer, batch.tokens[0][batch.mask[0]], kinds)
    assert len(labels) == len(strings)
    for s, k, label in zip(strings, kinds, labels):
        assert label == {NAME: f"[{s}]", VALUE: f"<{s}>"}.get(k, s)
    assert sum(label.startswith("[") for label in labels) == kinds.count(NAME) > 0


def test_attention_view_contents(tiny_run, batch, views):
    view = views["all heads"]
    assert isinstance(view, RenderedHTML)
    assert "unpkg.com" not in view._repr_html_()  # Jupyter renders from the inlined bundle, offline
    assert "var CircuitsVis=" in view.local_src and "unpkg.com" in view.cdn_src
    strings, kinds = marked_labels(tiny_run, batch, 1)
    labels = token_labels(tiny_run.tokenizer, batch.tokens[1][batch.mask[1]], kinds)
    assert json.dumps(labels) in view.local_src  # every token, in order, with its marker
    n_layers = tiny_run.config.model.n_layers
    assert f'"L{n_layers - 1}H0", "L{n_layers - 1}H1"' in view.local_src
    single = views["head 1 <first layer>"].local_src
    assert '["L0H1"]' in single and "L0H0" not in single


def test_attention_view_validates(tiny_run, batch):
    model = tiny_run.load_model()
    for kwargs, field in (
        ({"layer": 2}, "layer"),
        ({"layer": "middle"}, "layer"),
        ({"heads": [2]}, "heads"),
        ({"heads": []}, "heads"),
        ({"row": 4}, "row"),
    ):
        with pytest.raises(ValueError, match=field):
            attention_view(model, tiny_run.data, batch, **kwargs)


def test_offline_html_is_self_contained(tiny_run, batch, views, tmp_path):
    path = save_offline_html(views, tmp_path / "attention.html", title="tiny run")
    page = path.read_text(encoding="utf-8")
    assert page.count("var CircuitsVis=") == 1  # the bundle, inlined once
    assert page.count('CircuitsVis.render(\n      "circuits-vis-') == 2
    assert not REMOTE.search(page) and "unpkg.com" not in page
    assert not re.search(r'<div id="circuits-vis-[^"]*"[^>]*/>', page)  # no self-closing divs
    assert "<h2>head 1 &lt;first layer&gt;</h2>" in page and "<title>tiny run</title>" in page
    strings, kinds = marked_labels(tiny_run, batch, 1)
    name = next(s for s, k in zip(strings, kinds) if k == NAME)
    value = next(s for s, k in zip(strings, kinds) if k == VALUE)
    assert json.dumps(f"[{name}]") in page and json.dumps(f"<{value}>") in page
    single = save_offline_html(views["all heads"], tmp_path / "one.html").read_text(encoding="utf-8")
    assert single.count("var CircuitsVis=") == 1 and not REMOTE.search(single)
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match="views"):
        save_offline_html({}, tmp_path / "none.html")


@pytest.mark.browser
def test_offline_html_renders_in_a_browser(tiny_run, views, tmp_path):
    """Headless Chromium, network off: every view is drawn by React from the inlined bundle."""
    dom = rendered_dom(save_offline_html(views, tmp_path / "attention.html"))
    assert dom.count("Head Selector (hover to view, click to lock)</h3>") == len(views)
    n_layers = tiny_run.config.model.n_layers
    for head in (f"L{n_layers - 1}H0", f"L{n_layers - 1}H1", "L0H1"):
        assert f">{head}</h4>" in dom


def test_offline_html_is_written_atomically(views, tmp_path, monkeypatch):
    path = tmp_path / "attention.html"
    path.write_text("old page")

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(attention_views.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_offline_html(views, path)
    assert path.read_text() == "old page"
    monkeypatch.setattr(attention_views.os, "replace", os.replace)


# Stands in for the bundle: records what a view's script passes to CircuitsVis.render, as JSON in the DOM.
RECORD_RENDER = (
    "<script>window.CircuitsVis = {AttentionHeads: 'AttentionHeads', render: (id, component, props) => {"
    "const e = document.createElement('pre'); e.className = 'render-call'; "
    "e.textContent = JSON.stringify({id, component, props}); document.body.appendChild(e); }};</script>"
)


@pytest.mark.browser
def test_notebook_view_unpacks_to_the_rounded_patterns(tiny_run, batch, tmp_path, monkeypatch):
    """The packed numbers, decoded by the view's own script in Chromium, are the 3-decimal patterns and
    zeros above the diagonal; the other props are circuitsvis's."""
    monkeypatch.setitem(attention_views._LOADED, "bundle", True)  # load_circuitsvis() was displayed
    model = tiny_run.load_model()
    view = attention_view(model, tiny_run.data, batch, row=1, layer="last", heads=[1, 0])
    page = tmp_path / "view.html"
    page.write_text(f"<!DOCTYPE html><html><body>{RECORD_RENDER}{view._repr_html_()}</body></html>", encoding="utf-8")
    calls = re.findall(r'<pre class="render-call">(.*?)</pre>', rendered_dom(page), re.S)
    assert len(calls) == 1
    call = json.loads(html_module.unescape(calls[0]))
    pattern, tokens, kinds = attention_views.row_pattern(model, batch, 1, tiny_run.config.model.n_layers - 1)
    expected = np.round(pattern[[1, 0]].double().numpy(), 3)
    got = np.array(call["props"]["attention"])
    assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-9
    assert call["component"] == "AttentionHeads" and call["id"] in view.local_src
    assert call["props"]["tokens"] == token_labels(tiny_run.tokenizer, tokens, kinds)
    n_layers = tiny_run.config.model.n_layers
    assert call["props"]["attentionHeadNames"] == [f"L{n_layers - 1}H1", f"L{n_layers - 1}H0"]
    assert call["props"]["maskUpperTri"] is True
    non_causal = torch.rand(2, 4, 4)
    assert pack_attention(non_causal) is None  # only causal patterns are packed
    assert pack_attention(torch.tril(non_causal)) is not None


class FakeRun:
    path = "fake"

    def __init__(self, steps, phases):
        self.checkpoint_steps, self._phases = steps, phases

    def phases(self):
        return self._phases


def test_phase_steps_choose_before_during_after():
    steps = list(range(0, 101, 10))
    before, during, after = (f"{k} the plateau" for k in ("before", "during", "after"))
    fallback = {"first checkpoint": 0, "middle checkpoint": 50, "last checkpoint": 100}
    assert phase_steps(FakeRun(steps, Phases(20.0, 60.0))) == {before: 10, during: 40, after: 60}
    assert phase_steps(FakeRun(steps, Phases(20.0, float("nan")))) == fallback
    assert phase_steps(FakeRun(steps, Phases(0.0, 10.0))) == fallback  # nothing before the plateau
    assert phase_steps(FakeRun([0, 10, 20], Phases(10.0, 20.0))) == {before: 0, during: 10, after: 20}


def test_phase_views_on_the_tiny_run(tiny_run):
    chosen = phase_steps(tiny_run)
    assert len(set(chosen.values())) == 3 and set(chosen.values()) <= set(tiny_run.checkpoint_steps)
    views = phase_views(tiny_run, layer="first", row=2, size=4)
    assert list(views) == [f"{k} (step {s})" for k, s in chosen.items()]
    srcs = [v.local_src for v in views.values()]
    assert all('"L0H0"' in s for s in srcs)
    props = [s.split("CircuitsVis.AttentionHeads,")[1] for s in srcs]
    assert len(set(props)) == 3  # different checkpoints, different patterns
    explicit = phase_views(tiny_run, steps=[tiny_run.checkpoint_steps[-1]], size=4)
    assert list(explicit) == [f"step {tiny_run.checkpoint_steps[-1]}"]
    with pytest.raises(ValueError, match="steps"):
        phase_views(tiny_run, steps=[7])


def test_plot_pattern(tiny_run, batch):
    labels = ["<|bos|>", "[ A]", "[ B]", " is", "< X>"]
    pattern = np.tril(np.ones((5, 5)))
    pattern /= pattern.sum(1, keepdims=True)
    fig = plot_pattern(pattern, labels, title="uniform")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == labels
    np.testing.assert_allclose(ax.images[0].get_array(), pattern)
    with pytest.raises(ValueError, match="pattern"):
        plot_pattern(pattern[:, :4], labels)


def test_notebook_views_share_one_bundle_and_carry_a_static_fallback(tiny_run, batch, monkeypatch):
    monkeypatch.setitem(attention_views._LOADED, "bundle", False)  # a fresh kernel
    model = tiny_run.load_model()
    first, second = (attention_view(model, tiny_run.data, batch, row=r) for r in (0, 1))
    a, b = first._repr_html_(), second._repr_html_()
    assert a.count("var CircuitsVis=") == 1 and "var CircuitsVis=" not in b  # the first view brings the bundle
    assert len(b) < len(a) / 5
    for html in (a, b):
        assert 'src="data:image/png;base64,' in html and "CircuitsVis.render(" in html
    assert len(b) < 25_000  # the numbers packed (2 heads x ~60 tokens: ~60 KB as circuitsvis's JSON)
    monkeypatch.setitem(attention_views._LOADED, "bundle", False)
    loader = attention_views.load_circuitsvis()._repr_html_()
    assert "var CircuitsVis=" in loader and "var CircuitsVis=" not in first._repr_html_()
