"""workbench.retrieval.augment: contexts scored exactly as the run's own metrics, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.data.kinds import VALUE
from workbench.metrics import evaluate
from workbench.retrieval.augment import Context, augmented_items, check_room, majority, queries, score_contexts


@pytest.fixture(scope="module")
def model(packed_run):
    return packed_run.load_model()


def test_no_documents_gives_the_runs_own_scores(packed_run, model):
    data = packed_run.data
    batch = data.eval_batch("seen", 16)
    n_attr = len(data.config.data.attributes)
    scores = score_contexts(model, batch, [Context(r, ()) for r in range(16)], [], n_attr, data.tokenizer.pad_id, 5)
    own = evaluate(model, batch, n_attr)
    assert np.allclose(scores["loss"], own.loss.numpy(), atol=1e-4)
    assert (scores["correct"] == own.correct.numpy()).all()


def test_contexts_are_scored_by_the_metrics_one_computation(packed_run, model, monkeypatch):
    """One implementation: score_contexts scores tokens with metrics.token_scores, as value_scores does."""
    import workbench.metrics as metrics

    calls, real = [], metrics.token_scores
    monkeypatch.setattr(metrics, "token_scores", lambda *args: calls.append(args[0].shape) or real(*args))
    data = packed_run.data
    batch = data.eval_batch("seen", 4)
    n_attr = len(data.config.data.attributes)
    scores = score_contexts(model, batch, [Context(r, ()) for r in range(4)], [], n_attr, data.tokenizer.pad_id, 2)
    assert len(calls) == 2  # one per chunk of 2 contexts
    own = metrics.value_scores(model(batch.tokens), batch, n_attr)
    assert len(calls) == 3 and np.allclose(scores["loss"], own.loss.numpy(), atol=1e-4)


def test_a_context_is_scored_on_the_query_biography_only(packed_run, model, store):
    """Recomputed by hand: concatenate, forward, read the log-probabilities of the query's value tokens."""
    data = packed_run.data
    batch = data.eval_batch("seen", 4)
    n_attr = len(data.config.data.attributes)
    docs = (3, 17)
    scores = score_contexts(model, batch, [Context(2, docs)], store.tokens, n_attr, data.tokenizer.pad_id)
    n = int(batch.mask[2].sum())
    seq = np.concatenate([store.tokens[3], store.tokens[17], batch.tokens[2, :n].numpy()])
    offset = len(store.tokens[3]) + len(store.tokens[17])
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.as_tensor(seq)[None])[0].float(), -1)
    for a in range(n_attr):
        where = ((batch.kind[2, :n] == VALUE) & (batch.attribute[2, :n] == a)).nonzero()[:, 0] + offset
        nll = -sum(float(logp[p - 1, seq[p]]) for p in where.tolist())
        argmax = [int(logp[p - 1].argmax()) for p in where.tolist()]
        assert scores["loss"][0, a] == pytest.approx(nll, abs=1e-4)
        assert scores["correct"][0, a] == float(argmax == seq[where].tolist())
        assert scores["prediction"][0, a] == "-".join(map(str, argmax))


def test_queries_stop_before_each_value(packed_run):
    data = packed_run.data
    batch = data.eval_batch("seen", 3)
    n_attr = len(data.config.data.attributes)
    for r, row in enumerate(queries(batch, n_attr)):
        for a, q in enumerate(row):
            nxt = len(q)
            assert batch.kind[r, nxt] == VALUE and batch.attribute[r, nxt] == a and batch.value_start[r, nxt]
            assert not ((batch.kind[r, :nxt] == VALUE) & (batch.attribute[r, :nxt] == a)).any()


def test_items_per_mode(packed_run, model, store):
    data = packed_run.data
    batch = data.eval_batch("seen", 8)
    items = augmented_items(model, data, store, batch, "seen", ("none", "bm25", "oracle", "vote"), 2, 2)
    n_attr = len(data.config.data.attributes)
    assert items.groupby("mode").size().to_dict() == {m: 8 * n_attr for m in ("bm25", "none", "oracle", "vote")}
    oracle = items[items["mode"] == "oracle"]
    assert (oracle["hit"] == 1).all() and (oracle["retrieved"] == oracle["individual"]).all()
    # the truth is each individual's own value
    row = items.iloc[0]
    assert row["truth"] == "-".join(map(str, data.biographer.value_tokens(int(row["individual"]), 0)))
    # held-out individuals have nothing to retrieve: no oracle rows, BM25 never hits
    held = augmented_items(model, data, store, data.eval_batch("heldout", 8), "heldout", ("bm25", "oracle"), 1, 0)
    assert set(held["mode"]) == {"bm25"} and (held["hit"] == 0).all()


def test_majority_breaks_ties_by_rank():
    assert majority(["a", "b", "b"]) == "b"
    assert majority(["a", "b"]) == "a" and majority(["b", "a", "a", "b"]) == "b"


def test_no_room_in_the_context_raises_naming_the_field():
    with pytest.raises(ValueError, match=r"retrieval.m=1.*data.packing.k > 1"):
        check_room(100, 100, 1, 0)
    with pytest.raises(ValueError, match=r"retrieval.m=3 is out of range: allowed an integer in \[1, 2\]"):
        check_room(300, 100, 3, 0)
    check_room(300, 100, 2, 0)
