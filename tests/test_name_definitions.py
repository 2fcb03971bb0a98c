"""name->name by definition: a hand-made packed row with known answers, a plain-loop reference on real
biographies, the default equal to METRICS' name->name, a real model, the per-head summary, the cache."""

import numpy as np
import pandas as pd
import pytest
import torch
from test_attention import previous, uniform  # tests/, beside this file

from workbench.attention import (
    NAME_DEFINITIONS,
    head_summary,
    metrics_from_patterns,
    name_definitions,
    name_definitions_from_patterns,
    name_definitions_over_training,
)
from workbench.data.batch import Batch
from workbench.data.kinds import BOS, NAME, PAD, TEXT, VALUE


def random_patterns(b, h, t, seed=0):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(b, h, t, t, generator=g).masked_fill(
        ~torch.tril(torch.ones(t, t, dtype=torch.bool)), -torch.inf
    )
    return scores.softmax(-1)


def value(df, layer, head, metric):
    sel = df[(df["layer"] == layer) & (df["head"] == head) & (df["metric"] == metric)]
    assert len(sel) == 1
    return float(sel.value.iloc[0])


@pytest.fixture(scope="module")
def packed_row():
    """One row, two biographies (3-token names): bio 0 has name occurrences at 1-3 and 6-8, bio 1 at 11-13."""
    kinds = [BOS, NAME, NAME, NAME, VALUE, TEXT, NAME, NAME, NAME, VALUE, BOS, NAME, NAME, NAME, VALUE, PAD]
    attrs = [-1, 0, 0, 0, 0, 1, 1, 1, 1, 1, -1, 0, 0, 0, 0, -1]
    t = len(kinds)
    return Batch(
        tokens=torch.arange(t)[None],
        kind=torch.tensor([kinds]),
        attribute=torch.tensor([attrs]),
        value_start=torch.tensor([[k == VALUE for k in kinds]]),
        individuals=torch.tensor([0]),
        packed_individuals=torch.tensor([[0, 1]]),
    )


def test_hand_made_packed_row_gives_the_known_answers(packed_row):
    t = packed_row.tokens.shape[1]
    patterns = {0: torch.stack([uniform(1, t), previous(1, t)], 1)}  # head 0 uniform, head 1 previous token
    df = name_definitions_from_patterns(patterns, packed_row)
    assert set(df.metric) == set(NAME_DEFINITIONS) and len(df) == 2 * len(NAME_DEFINITIONS)
    # uniform attention at query q: 1 / (q + 1) on each key; last name tokens at 3, 8, 13
    want_uniform = {
        "name->name": np.mean([2 / 4, 2 / 9, 2 / 14]),
        "name->name:to_first": np.mean([1 / 4, 1 / 9, 1 / 14]),
        "name->name:every_query": np.mean([1 / 3, 2 / 4, 1 / 8, 2 / 9, 1 / 13, 2 / 14]),
        "name->name:first_occurrence": np.mean([2 / 4, 2 / 14]),  # 13 starts biography 1
        "name->name:any_name": np.mean([2 / 4, 5 / 9, 2 / 14]),  # not biography 0's name at 13
        "name->name:earlier_occurrences": 3 / 9,  # queries 3 and 13 have no earlier occurrence
    }
    want_previous = {d: 1.0 for d in NAME_DEFINITIONS} | {
        "name->name:to_first": 0.0,
        "name->name:earlier_occurrences": 0.0,
    }
    for d in NAME_DEFINITIONS:
        assert value(df, 0, 0, d) == pytest.approx(want_uniform[d], abs=1e-7), d
        assert value(df, 0, 1, d) == pytest.approx(want_previous[d], abs=1e-7), d
    summary = head_summary(df).set_index("metric")
    assert summary.loc["name->name:any_name", "max"] == pytest.approx(1.0)
    assert summary.loc["name->name:any_name", "max_head"] == 1
    assert summary.loc["name->name:to_first", "max_head"] == 0
    assert summary.loc["name->name:to_first", "mean"] == pytest.approx(want_uniform["name->name:to_first"] / 2)


def reference(batch, pattern):
    """Plain loops over one head's pattern [batch, q, k]: each definition's mean over its queries."""
    out = {d: [] for d in NAME_DEFINITIONS}
    for r in range(len(batch)):
        kinds, attrs = batch.kind[r].tolist(), batch.attribute[r].tolist()
        occurrences, p = [], 0  # lists of positions, one per run of name tokens within a sentence
        while p < len(kinds):
            if kinds[p] == NAME:
                run = [p]
                while p + 1 < len(kinds) and kinds[p + 1] == NAME and attrs[p + 1] == attrs[p]:
                    p += 1
                    run.append(p)
                occurrences.append(run)
            p += 1
        for i, occ in enumerate(occurrences):
            w = pattern[r, occ[-1]]
            earlier = [k for o in occurrences[:i] for k in o]
            out["name->name"].append(sum(w[k] for k in occ[:-1]))
            out["name->name:to_first"].append(float(w[occ[0]]))
            if i == 0:
                out["name->name:first_occurrence"].append(sum(w[k] for k in occ[:-1]))
            out["name->name:any_name"].append(sum(w[k] for k in occ[:-1] + earlier))
            if earlier:
                out["name->name:earlier_occurrences"].append(sum(w[k] for k in earlier))
            for j in range(1, len(occ)):
                out["name->name:every_query"].append(sum(pattern[r, occ[j], k] for k in occ[:j]))
    assert all(len(out[d]) for d in out)
    return {d: float(np.mean(v)) for d, v in out.items()}


def test_plain_loop_reference_and_the_default(tiny_data):
    batch = tiny_data.eval_batch("seen", 4)
    b, t = batch.tokens.shape
    patterns = {0: random_patterns(b, 2, t, 0), 1: random_patterns(b, 2, t, 1)}
    df = name_definitions_from_patterns(patterns, batch)
    for layer in (0, 1):
        for head in (0, 1):
            want = reference(batch, patterns[layer][:, head].double())
            for d, v in want.items():
                assert value(df, layer, head, d) == pytest.approx(v, abs=1e-9), (layer, head, d)
    default = metrics_from_patterns(patterns, batch)
    np.testing.assert_allclose(
        df[df.metric == "name->name"].value, default[default.metric == "name->name"].value, atol=1e-12
    )


def test_real_model_and_bad_input(tiny_run, tiny_data):
    model, batch = tiny_run.load_model(), tiny_data.eval_batch("seen", 6)
    n = model.cfg.n_layers
    _, cache = model.run_with_cache(batch.tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    direct = name_definitions_from_patterns({i: cache[f"blocks.{i}.attn.hook_pattern"] for i in range(n)}, batch)
    chunked = name_definitions(model, batch, chunk=4)
    np.testing.assert_allclose(chunked.value, direct.value, atol=1e-6)
    assert chunked.value.between(0, 1).all()
    one = name_definitions(model, batch, definitions="name->name:to_first")
    assert set(one.metric) == {"name->name:to_first"}
    with pytest.raises(ValueError, match="definitions"):
        name_definitions(model, batch, definitions=["name->nam"])
    with pytest.raises(ValueError, match="chunk"):
        name_definitions(model, batch, chunk=0)


def test_over_training_cache(tiny_run_copy, monkeypatch):
    run = tiny_run_copy
    steps = run.checkpoint_steps
    df = name_definitions_over_training(run, steps=[steps[0], steps[-1]], size=4, progress=False)
    assert list(df.columns) == ["step", "layer", "head", "metric", "value"]
    cfg = run.config.model
    assert len(df) == 2 * cfg.n_layers * cfg.n_heads * len(NAME_DEFINITIONS)
    assert (run.path / "analysis" / "name_definitions.csv").is_file()
    monkeypatch.setattr(run, "load_model", lambda step: pytest.fail("the cache covers the request"))
    again = name_definitions_over_training(run, steps=[steps[0], steps[-1]], size=4, progress=False)
    pd.testing.assert_frame_equal(again, df)
    with pytest.raises(ValueError, match="size"):
        name_definitions_over_training(run, size=0, progress=False)
