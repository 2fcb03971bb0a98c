"""Attention stability: Jensen-Shannon distance between attention patterns, over checkpoints, cached."""

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

import workbench.stability as stability
from workbench.stability import attention_stability, js_divergence, pattern_distance, pretraining_drift, query_mask
from workbench.viz import plot_stability


@pytest.fixture(scope="module")
def models(tiny_run):
    return tiny_run.load_model(0), tiny_run.load_model(40)


@pytest.fixture(scope="module")
def batch(tiny_run):
    return tiny_run.data.eval_batch("seen", 12)


@pytest.fixture
def run_copy(tiny_run_copy):
    return tiny_run_copy


def test_js_divergence_matches_a_reference_and_its_extremes():
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(7), size=5), rng.dirichlet(np.ones(7), size=5)
    m = (p + q) / 2
    ref = 0.5 * (p * np.log2(p / m)).sum(-1) + 0.5 * (q * np.log2(q / m)).sum(-1)
    np.testing.assert_allclose(js_divergence(torch.tensor(p), torch.tensor(q)).numpy(), ref, rtol=1e-12)
    disjoint = js_divergence(torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 0.5, 0.5]]))
    assert disjoint.item() == pytest.approx(1.0, abs=1e-12)  # zeros are handled: 0 log 0 = 0


@pytest.mark.parametrize("positions", ["all", "attribute"])
def test_distance_of_a_model_with_itself_is_exactly_zero(models, batch, tiny_run, positions):
    df = pattern_distance(models[1], tiny_run.load_model(40), batch, positions)
    cfg = tiny_run.config.model
    assert list(df.columns) == ["layer", "head", "distance"]
    assert len(df) == cfg.n_layers * cfg.n_heads
    assert (df["distance"] == 0.0).all()


@pytest.mark.parametrize("positions", ["all", "attribute"])
def test_distance_is_symmetric_bounded_and_positive_between_checkpoints(models, batch, positions):
    ab = pattern_distance(models[0], models[1], batch, positions)
    ba = pattern_distance(models[1], models[0], batch, positions)
    pd.testing.assert_frame_equal(ab, ba, check_exact=True)
    assert ((ab["distance"] > 0) & (ab["distance"] <= 1)).all()


def test_padding_queries_are_not_counted(models, batch):
    """Appending padding to every sequence changes nothing."""
    padded = type(batch)(
        **{
            f: torch.nn.functional.pad(getattr(batch, f), (0, 5)) if f != "individuals" else batch.individuals
            for f in ("tokens", "kind", "attribute", "value_start", "individuals")
        }
    )
    assert not query_mask(padded, "all")[:, -5:].any()
    a = pattern_distance(models[0], models[1], batch)
    b = pattern_distance(models[0], models[1], padded)
    np.testing.assert_allclose(a["distance"], b["distance"], rtol=1e-6)


def test_attribute_queries_predict_value_starts(batch):
    mask = query_mask(batch, "attribute")
    assert mask.sum() == batch.value_start.sum()
    assert batch.value_start[:, 1:][mask[:, :-1]].all()


def test_attention_stability_covers_every_checkpoint_and_is_cached(run_copy, monkeypatch):
    df = attention_stability(run_copy, size=8, progress=False)
    steps, m = run_copy.checkpoint_steps, run_copy.config.model
    assert sorted(df["step"].unique()) == steps
    assert len(df) == len(steps) * m.n_layers * m.n_heads
    assert (df[df["step"] == steps[0]]["distance"] == 0).all()
    assert (df[df["step"] == steps[-1]]["distance"] > 0).all()
    assert (run_copy.path / "analysis" / "attention_stability.csv").is_file()

    def fail(*a, **k):
        raise AssertionError("recomputed a cached distance")

    monkeypatch.setattr(stability, "pattern_distance", fail)
    pd.testing.assert_frame_equal(attention_stability(run_copy, size=8, progress=False), df)


def test_reference_step_and_new_checkpoints(run_copy):
    df = attention_stability(run_copy, reference_step=40, size=8, progress=False)
    assert (df["reference_step"] == 40).all()
    assert (df[df["step"] == 40]["distance"] == 0).all()
    assert (df[df["step"] == 0]["distance"] > 0).all()


def test_pretraining_drift_has_both_references(run_copy):
    df = pretraining_drift(run_copy, size=8, progress=False)
    steps = run_copy.checkpoint_steps
    start, prev = df[df["reference"] == "start"], df[df["reference"] == "previous"]
    assert sorted(start["step"].unique()) == steps[1:] and (start["reference_step"] == steps[0]).all()
    assert dict(zip(prev["step"], prev["reference_step"])) == dict(zip(steps[1:], steps[:-1]))
    first = df[df["step"] == steps[1]]  # the first checkpoint's previous one is step 0
    assert np.array_equal(
        first[first["reference"] == "start"]["distance"].values,
        first[first["reference"] == "previous"]["distance"].values,
    )
    fig = plot_stability(attention_stability(run_copy, size=8, progress=False), df)
    assert isinstance(fig, Figure) and len(fig.axes) == 2


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda run, m, b: pattern_distance(m[0], m[1], b, positions="names"), "positions"),
        (lambda run, m, b: attention_stability(run, reference_step=35, progress=False), "reference_step=35"),
        (lambda run, m, b: attention_stability(run, size=0, progress=False), "size=0"),
        (lambda run, m, b: pretraining_drift(run, positions="x", progress=False), "positions"),
    ],
)
def test_bad_arguments_are_value_errors(call, match, run_copy, models, batch):
    files = sorted(run_copy.path.rglob("*"))
    with pytest.raises(ValueError, match=match):
        call(run_copy, models, batch)
    assert sorted(run_copy.path.rglob("*")) == files  # no cache written
