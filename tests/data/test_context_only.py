"""Context-only individuals (data.packing.q_ctx, n_context): a disjoint pool, two mentions in one packed sequence,
never evaluated and never in a datastore; batches a pure function of (seed, step); bad settings refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.config import preset
from workbench.data.biography_data import BiographyData
from workbench.data.kinds import PAD


def _data(q_ctx: float = 1.0, k: int = 3, n_context: int = 700, seed: int = 0) -> BiographyData:
    return BiographyData(preset("tiny", seed=seed, data={"packing": {"k": k, "q_ctx": q_ctx, "n_context": n_context}}))


def test_the_pool_is_disjoint_and_the_other_groups_unchanged(tiny_data):
    data = _data()
    pop, base = data.population, tiny_data.population
    assert pop.context.start == base.new.stop and len(pop.context) == 700
    for group in ("seen", "heldout", "new"):
        r = pop.group(group)
        assert r == base.group(group) and (pop.values[r.start : r.stop] == base.values[r.start : r.stop]).all()
    with pytest.raises(ValueError, match="group='context'"):
        pop.group("context")  # not an evaluation group
    assert data.eval_groups == tiny_data.eval_groups


def test_q_ctx_1_puts_one_context_individual_twice_in_every_sequence():
    data = _data(q_ctx=1.0)
    ctx = np.asarray(data.population.context)
    for step in (0, 7):
        rows = data.train_individuals(step)
        for row in rows.tolist():
            inside = [i for i in row if i in set(ctx.tolist())]
            assert len(inside) == 2 and inside[0] == inside[1], row
        batch = data.train_batch(step)
        assert batch.packed_individuals.tolist() == rows.tolist()
        for r in range(len(batch)):  # each biography keeps its own labels: k BOS-led biographies, then padding
            n = int(batch.mask[r].sum())
            assert (batch.biography[r, :n] >= 0).all() and (batch.kind[r, n:] == PAD).all()


def test_q_ctx_sets_the_share_of_sequences_with_a_context_individual(stats):
    data = _data(q_ctx=0.3, n_context=700)
    ctx = set(data.population.context)
    rows = np.concatenate([data.train_individuals(s) for s in range(40)])
    share = float(np.mean([any(i in ctx for i in row) for row in rows.tolist()]))
    assert abs(share - 0.3) < stats.binomial_tolerance(0.3, len(rows))
    assert _data(q_ctx=0.0, n_context=0).train_individuals(3).max() < data.population.heldout.start


def test_batches_with_context_individuals_are_a_pure_function_of_seed_and_step():
    a, b = _data(), _data()
    assert torch.equal(a.train_batch(5).tokens, (b.train_batch(2), b.train_batch(5))[1].tokens)
    assert not torch.equal(a.train_batch(5).tokens, _data(seed=1).train_batch(5).tokens)


def test_context_individuals_never_enter_a_datastore_or_an_evaluation_set():
    from workbench.retrieval.datastore import DatastoreConfig, build_datastore

    data = _data(q_ctx=1.0)
    ctx = np.asarray(data.population.context)
    store = build_datastore(data, DatastoreConfig(source="trained", up_to_step=4))
    assert len(store) > 0 and not np.isin(store.individuals, ctx).any()
    for group in data.eval_groups:
        assert not np.isin(data.eval_batch(group, 32).individuals.numpy(), ctx).any()


@pytest.mark.parametrize(
    "packing, message",
    [
        (
            {"k": 3, "q_ctx": 1.5, "n_context": 700},
            r"packing\.q_ctx=1\.5 is out of range: allowed a number in \[0\.0, 1\.0\]",
        ),
        ({"k": 1, "q_ctx": 0.5, "n_context": 700}, r"packing\.q_ctx=0\.5 is out of range: allowed 0 when packing\.k=1"),
        (
            {"k": 3, "q_ctx": 0.5, "n_context": 0},
            r"packing\.n_context=0 is out of range: allowed > 0 when packing\.q_ctx",
        ),
        ({"k": 3, "q_ctx": 0.5, "n_context": 100}, r"data\.packing\.n_context=100 is out of range: allowed >= 320"),
        (
            {"k": 3, "q_ctx": 0.5, "n_context": 10**9},
            r"data\.packing\.n_context=1000000000 is out of range: allowed an integer",
        ),
    ],
)
def test_bad_context_settings_are_one_line_errors(packing, message):
    with pytest.raises(ValueError, match=message):
        preset("tiny", data={"packing": packing})


def test_a_larger_pool_changes_only_which_context_individuals_appear():
    """How a longer run's baseline can share the shorter one's seen batches: the slots and the seen individuals of
    every step do not depend on the pool's size."""
    small, large = _data(q_ctx=0.5, n_context=700), _data(q_ctx=0.5, n_context=5000)
    for step in (0, 9):
        a, b = small.train_individuals(step), large.train_individuals(step)
        ctx_a, ctx_b = a >= small.population.context.start, b >= large.population.context.start
        assert (ctx_a == ctx_b).all() and (a[~ctx_a] == b[~ctx_b]).all()
