"""Attention metrics: hand-made patterns with known answers, a real model, over training, the cache."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.attention import (
    ATTRIBUTE_METRICS,
    METRICS,
    attention_metrics,
    attention_over_training,
    metrics_from_patterns,
)
from workbench.data.kinds import BOS, NAME, PAD, TEXT, VALUE
from workbench.model import build_model
from workbench.patching.hooks import patch_patterns
from workbench.patching.sources import UniformPatterns
from workbench.phases import Phases
from workbench.viz import plot_attention_over_training


@pytest.fixture(scope="module")
def batch(tiny_data):
    return tiny_data.eval_batch("seen", 6)


def uniform(b, t):
    causal = torch.tril(torch.ones(t, t))
    return (causal / causal.sum(-1, keepdim=True)).expand(b, t, t)


def previous(b, t):
    """All mass on the previous token (BOS on itself)."""
    p = torch.zeros(t, t)
    p[0, 0] = 1.0
    p[torch.arange(1, t), torch.arange(t - 1)] = 1.0
    return p.expand(b, t, t)


def expected(batch, biographer, kind_of_key):
    """Reference by plain loops; kind_of_key(q, k) is the pattern's weight of key k at query q."""
    out = {
        m: []
        for m in (
            "name->name",
            "attribute->name",
            "attribute->own_name",
            "attribute->text",
            "attribute->bos",
            "attribute->value",
        )
    }
    for r in range(len(batch)):
        kinds, attrs = batch.kind[r].tolist(), batch.attribute[r].tolist()
        vstart, n = batch.value_start[r].tolist(), int(batch.mask[r].sum())
        name_len = len(biographer.name_tokens(int(batch.individuals[r])))
        last_names = [q for q in range(n) if kinds[q] == NAME and kinds[q + 1] != NAME]
        assert len(last_names) == len(biographer.attributes)
        for q in last_names:
            assert all(kinds[q - i] == NAME for i in range(name_len)) and kinds[q - name_len] != NAME
            out["name->name"].append(sum(kind_of_key(q, q - i) for i in range(1, name_len)))
        for q in [p - 1 for p in range(n) if vstart[p]]:
            w = [kind_of_key(q, k) for k in range(q + 1)]
            out["attribute->name"].append(sum(x for x, k in zip(w, kinds) if k == NAME))
            out["attribute->own_name"].append(sum(x for x, k, a in zip(w, kinds, attrs) if k == NAME and a == attrs[q]))
            out["attribute->text"].append(sum(x for x, k in zip(w, kinds) if k == TEXT))
            out["attribute->bos"].append(sum(x for x, k in zip(w, kinds) if k == BOS))
            out["attribute->value"].append(sum(x for x, k in zip(w, kinds) if k == VALUE))
    return {m: float(np.mean(v)) for m, v in out.items()}


def value(df, layer, head, metric):
    sel = df[(df["layer"] == layer) & (df["head"] == head) & (df["metric"] == metric)]
    assert len(sel) == 1
    return float(sel.value.iloc[0])


def test_hand_made_patterns_give_the_known_answers(batch, tiny_data):
    b, t = batch.tokens.shape
    u, p = uniform(b, t), previous(b, t)
    patterns = {0: torch.stack([u, p], 1), 1: torch.stack([p, u], 1)}  # [batch, head, q, k]
    df = metrics_from_patterns(patterns, batch)
    assert set(df.metric) == set(METRICS) and len(df) == 2 * 2 * len(METRICS)
    want_u = expected(batch, tiny_data.biographer, lambda q, k: 1.0 / (q + 1))
    want_p = expected(batch, tiny_data.biographer, lambda q, k: float(k == q - 1))
    for layer, head, want in ((0, 0, want_u), (0, 1, want_p), (1, 0, want_p), (1, 1, want_u)):
        for metric, v in want.items():
            assert value(df, layer, head, metric) == pytest.approx(v, abs=1e-6), (layer, head, metric)
    for layer, head in ((0, 0), (1, 1)):  # uniform: maximal entropy
        assert value(df, layer, head, "name:sharpness") == pytest.approx(1.0)
        assert value(df, layer, head, "attribute:sharpness") == pytest.approx(1.0)
    for layer, head in ((0, 1), (1, 0)):  # one-hot on the previous token: zero entropy
        assert value(df, layer, head, "name:sharpness") == 0.0
        assert value(df, layer, head, "attribute:sharpness") == 0.0
        assert value(df, layer, head, "name->name") == pytest.approx(1.0)


def test_padding_rows_and_bad_shapes(batch):
    assert (batch.kind == PAD).any(), "the eval batch should contain padded rows"
    b, t = batch.tokens.shape
    with pytest.raises(ValueError, match=r"patterns\[0\]"):
        metrics_from_patterns({0: uniform(b, t)[:, None, :-1, :-1]}, batch)
    with pytest.raises(ValueError, match="empty"):
        metrics_from_patterns({}, batch)


@pytest.fixture(scope="module")
def model(tiny_data):
    cfg = tiny_data.config
    return build_model(cfg.model, tiny_data.tokenizer.vocab_size, tiny_data.max_length, seed=3).eval()


def test_real_model_chunks_and_mass_partition(model, batch):
    whole = attention_metrics(model, batch, chunk=len(batch))
    chunked = attention_metrics(model, batch, chunk=4)
    np.testing.assert_allclose(chunked.value, whole.value, atol=1e-6)
    assert whole.value.between(0, 1).all()
    wide = whole.pivot_table(index=["layer", "head"], columns="metric", values="value")
    parts = [m for m in ATTRIBUTE_METRICS if m not in ("attribute->own_name", "attribute:sharpness")]
    np.testing.assert_allclose(wide[parts].sum(axis=1), 1.0, atol=1e-5)
    assert (wide["attribute->own_name"] <= wide["attribute->name"] + 1e-9).all()
    with pytest.raises(ValueError, match="chunk"):
        attention_metrics(model, batch, chunk=0)


def test_attention_metrics_reads_the_patterns_the_model_uses(model, batch):
    """With every pattern replaced by uniform attention, the model's metrics are the uniform ones."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    b, t = batch.tokens.shape
    with patch_patterns(model, UniformPatterns(n_layers, n_heads)):
        patched = attention_metrics(model, batch, chunk=4)
    ref = metrics_from_patterns(
        {layer: uniform(b, t)[:, None].expand(b, n_heads, t, t) for layer in range(n_layers)}, batch
    )
    np.testing.assert_allclose(patched.value, ref.value, atol=1e-5)
    assert not np.allclose(attention_metrics(model, batch).value, ref.value, atol=1e-3)


# ---------------------------------------------------------------------------------------------
# over training


@pytest.fixture
def run_copy(tiny_run_copy):
    return tiny_run_copy


def test_over_training_rows_range_and_cache_reuse(run_copy, monkeypatch):
    run = run_copy
    steps, cfg = run.checkpoint_steps, run.config.model
    df = attention_over_training(run, size=8, progress=False)
    assert list(df.columns) == ["step", "layer", "head", "metric", "value"]
    assert len(df) == len(steps) * cfg.n_layers * cfg.n_heads * len(METRICS)
    assert not df.duplicated(["step", "layer", "head", "metric"]).any()
    assert sorted(df.step.unique()) == steps
    assert df.value.notna().all() and df.value.between(0, 1).all()
    assert (run.path / "analysis" / "attention_metrics.csv").is_file()
    first = df[df.step == steps[0]].reset_index(drop=True)
    direct = attention_metrics(run.load_model(steps[0]), run.data.eval_batch("seen", 8))
    np.testing.assert_allclose(first.value, direct.value, atol=1e-9)

    def fail(*a, **k):
        raise AssertionError("load_model called although the cache covers the request")

    monkeypatch.setattr(run, "load_model", fail)
    again = attention_over_training(run, size=8, progress=False)
    pd.testing.assert_frame_equal(again, df)
    subset = attention_over_training(run, steps=[steps[-1], steps[0]], size=8, progress=False)
    pd.testing.assert_frame_equal(subset, df[df.step.isin([steps[0], steps[-1]])].reset_index(drop=True))
    with pytest.raises(AssertionError, match="load_model"):  # another eval-set size is not covered
        attention_over_training(run, size=4, progress=False)


def test_over_training_computes_only_missing_steps(run_copy, monkeypatch):
    run = run_copy
    steps = run.checkpoint_steps
    full = attention_over_training(run, size=8, progress=False)
    path = run.path / "analysis" / "attention_metrics.csv"
    cached = pd.read_csv(path, dtype={"weights_sha256": str})
    cached.loc[cached.step == steps[0], "weights_sha256"] = "0" * 64  # as if step 0 were retrained
    cached[cached.step != steps[-1]].to_csv(path, index=False)  # step -1 missing
    loaded = []
    original = run.load_model
    monkeypatch.setattr(run, "load_model", lambda step: loaded.append(step) or original(step))
    again = attention_over_training(run, size=8, progress=False)
    assert loaded == [steps[0], steps[-1]]
    np.testing.assert_allclose(again.value, full.value, atol=1e-9)
    assert not list(run.path.rglob("*.tmp"))


def test_over_training_validates_before_compute(run_copy, monkeypatch):
    monkeypatch.setattr(run_copy, "load_model", lambda step: pytest.fail("computed before validating"))
    with pytest.raises(ValueError, match="steps"):
        attention_over_training(run_copy, steps=[7], progress=False)
    with pytest.raises(ValueError, match="size"):
        attention_over_training(run_copy, size=0, progress=False)


def test_plot_attention_over_training():
    rng = np.random.default_rng(0)
    rows = [
        (s, layer, h, "attribute->name", rng.random()) for s in (0, 10, 20, 40) for layer in (0, 1) for h in range(3)
    ]
    df = pd.DataFrame(rows, columns=["step", "layer", "head", "metric", "value"])
    fig = plot_attention_over_training(df, "attribute->name", layer="last", phases=Phases(10.0, 30.0))
    ax = fig.axes[0]
    assert ax.get_xscale() == "symlog"
    mean_line = next(line for line in ax.lines if line.get_label() == "mean over heads")
    want = df[df.layer == 1].groupby("step").value.mean()
    np.testing.assert_allclose(mean_line.get_ydata(), want.values)
    vertical = [line for line in ax.lines if len(set(line.get_xdata())) == 1 and len(line.get_xdata()) == 2]
    assert sorted(line.get_xdata()[0] for line in vertical) == [10.0, 30.0]
    assert len(ax.lines) == 3 + 1 + 2
    no_phases = plot_attention_over_training(df, "attribute->name", layer=0, phases=Phases(math.nan, math.nan))
    assert len(no_phases.axes[0].lines) == 3 + 1
    with pytest.raises(ValueError, match="metric"):
        plot_attention_over_training(df, "name->name")
    with pytest.raises(ValueError, match="layer"):
        plot_attention_over_training(df, "attribute->name", layer=2)
