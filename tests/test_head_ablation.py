"""Head ablation: a head whose output is unused changes nothing, zero ablation = zeroing W_O, mean
ablation on identical rows = no ablation, over training with its cache, bad input."""

import copy

import pandas as pd
import pytest
import torch

from workbench.head_ablation import COLUMNS, head_ablation, head_ablation_over_training
from workbench.metrics import evaluate

N_ATTRIBUTES = 6


@pytest.fixture(scope="module")
def model(tiny_run):
    return tiny_run.load_model()


@pytest.fixture(scope="module")
def batch(tiny_run):
    return tiny_run.data.eval_batch("seen", 8)


def test_zero_ablation_is_zeroing_the_heads_output_weights(model, batch):
    df = head_ablation(model, batch, N_ATTRIBUTES, layer=0, kind="zero")
    n_heads = model.cfg.n_heads
    assert list(df.columns) == COLUMNS and list(df["head"]) == [*range(n_heads), -1]
    clean = evaluate(model, batch, N_ATTRIBUTES).loss.mean().item()
    assert df.clean_loss.eq(clean).all()
    for head in (*range(n_heads), -1):
        twin = copy.deepcopy(model)
        with torch.no_grad():
            twin.blocks[0].attn.W_O[head if head >= 0 else slice(None)] = 0.0
        want = evaluate(twin, batch, N_ATTRIBUTES).loss.mean().item()
        row = df[df["head"] == head].iloc[0]
        assert row.attribute_loss == pytest.approx(want, abs=1e-5)
        assert row.delta == pytest.approx(want - clean, abs=1e-5)
    assert (df.delta.abs() > 1e-4).all()  # every head of the trained model matters somewhat


@pytest.mark.parametrize("kind", ["mean", "zero"])
def test_a_head_whose_output_is_unused_changes_nothing(model, batch, kind):
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin.blocks[0].attn.W_O[1] = 0.0  # head 1 of layer 0 writes nothing to the residual stream
    df = head_ablation(twin, batch, N_ATTRIBUTES, layer=0, kind=kind).set_index("head")
    assert df.loc[1, "delta"] == pytest.approx(0.0, abs=1e-5)
    assert abs(df.loc[0, "delta"]) > 1e-3


def test_mean_ablation_on_identical_rows_is_no_ablation(model, batch):
    same = batch[[0] * 4]  # the per-position mean of identical rows is each row's own output
    mean = head_ablation(model, same, N_ATTRIBUTES, layer=1, kind="mean")
    zero = head_ablation(model, same, N_ATTRIBUTES, layer=1, kind="zero")
    assert mean.delta.abs().max() < 1e-4
    assert zero.delta.abs().max() > 1e-3


def test_bad_input(model, batch):
    with pytest.raises(ValueError, match="kind"):
        head_ablation(model, batch, N_ATTRIBUTES, kind="resample")
    with pytest.raises(ValueError, match="layer"):
        head_ablation(model, batch, N_ATTRIBUTES, layer=model.cfg.n_layers)
    with pytest.raises(ValueError, match="batch"):
        head_ablation(model, batch[:0], N_ATTRIBUTES)


def test_over_training_rows_and_cache(tiny_run_copy, monkeypatch):
    run = tiny_run_copy
    steps = [run.checkpoint_steps[0], run.checkpoint_steps[-1]]
    df = head_ablation_over_training(run, steps, splits=("seen", "heldout"), size=4, progress=False)
    assert list(df.columns) == ["step", "split", *COLUMNS]
    assert len(df) == 2 * 2 * 2 * (run.config.model.n_heads + 1)  # steps x splits x kinds x (heads + all)
    last = df[(df.step == steps[1]) & (df.split == "seen") & (df.kind == "mean")].reset_index(drop=True)
    direct = head_ablation(run.load_model(steps[1]), run.data.eval_batch("seen", 4), N_ATTRIBUTES)
    pd.testing.assert_frame_equal(last[COLUMNS], direct, check_exact=False, atol=1e-9)
    monkeypatch.setattr(run, "load_model", lambda step: pytest.fail("the cache covers the request"))
    again = head_ablation_over_training(run, steps, splits=("seen", "heldout"), size=4, progress=False)
    pd.testing.assert_frame_equal(again, df)
    for kwargs, name in (({"kinds": ["x"]}, "kinds"), ({"splits": "new"}, "splits"), ({"layer": 9}, "layer")):
        with pytest.raises(ValueError, match=name):
            head_ablation_over_training(run, steps, progress=False, **kwargs)
