"""workbench.data.population: unique names, disjoint groups, prefix stability, template splits."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.config import DataConfig, PoolSizes
from workbench.data.population import make_population
from workbench.data.templates import ATTRIBUTES


def _world(small_pools, seed=0, **kw):
    kw.setdefault("n_individuals", 300)
    kw.setdefault("n_heldout", 100)
    kw.setdefault("n_finetune", 50)
    return make_population(DataConfig(pool_sizes=small_pools, vocab_size=512, **kw), seed)


def test_group_ranges(small_pools):
    w = _world(small_pools)
    assert w.seen == range(0, 300)
    assert w.heldout == range(300, 400)
    assert w.new == range(400, 450)
    assert len(w.names) == len(w.values) == len(w.template_order) == 450
    assert w.group("heldout") == w.heldout
    with pytest.raises(ValueError, match="group"):
        w.group("test")


def test_full_names_unique(small_pools):
    w = _world(small_pools)
    names = [w.full_name(i) for i in range(len(w.names))]
    assert len(set(names)) == len(names)
    assert len({tuple(r) for r in w.names.tolist()}) == len(names)


def test_groups_disjoint_by_name(small_pools):
    w = _world(small_pools)
    groups = {g: {w.full_name(i) for i in w.group(g)} for g in ("seen", "heldout", "new")}
    assert len(groups["seen"]) == 300 and len(groups["heldout"]) == 100 and len(groups["new"]) == 50
    assert not groups["seen"] & groups["heldout"]
    assert not groups["seen"] & groups["new"]
    assert not groups["heldout"] & groups["new"]


def test_names_use_the_pools(small_pools):
    w = _world(small_pools)
    first, middle, last = w.names.T
    assert first.min() >= 0 and first.max() < small_pools.first_names
    assert middle.min() >= 0 and middle.max() < small_pools.first_names
    assert last.min() >= 0 and last.max() < small_pools.last_names
    i = 17
    assert w.full_name(i) == " ".join(
        (w.pools.first_names[first[i]], w.pools.first_names[middle[i]], w.pools.last_names[last[i]])
    )


def test_whole_name_space_can_be_used():
    p = PoolSizes(first_names=3, last_names=4)
    w = make_population(DataConfig(n_individuals=30, n_heldout=6, pool_sizes=p), seed=1)
    assert len({w.full_name(i) for i in range(36)}) == 3 * 3 * 4


def test_prefix_stable_when_groups_grow():
    # n_individuals above one generation chunk (4096), so chunk boundaries are exercised
    p = PoolSizes(first_names=100, last_names=100)
    base = make_population(DataConfig(n_individuals=4200, n_heldout=10, pool_sizes=p), seed=3)
    more = make_population(DataConfig(n_individuals=4200, n_heldout=4000, n_finetune=500, pool_sizes=p), seed=3)
    r = base.seen
    np.testing.assert_array_equal(base.names[r.start : r.stop], more.names[r.start : r.stop])
    np.testing.assert_array_equal(base.values[r.start : r.stop], more.values[r.start : r.stop])
    np.testing.assert_array_equal(base.template_order[r.start : r.stop], more.template_order[r.start : r.stop])
    assert base.fingerprint("seen") == more.fingerprint("seen")
    # the first held-out individuals are the same too
    h = base.heldout
    np.testing.assert_array_equal(base.names[h.start : h.stop], more.names[h.start : h.stop])
    # and adding fine-tuning individuals does not touch the held-out ones
    more2 = make_population(DataConfig(n_individuals=4200, n_heldout=4000, n_finetune=900, pool_sizes=p), seed=3)
    assert more2.fingerprint("heldout") == more.fingerprint("heldout")
    assert more2.fingerprint("seen") == base.fingerprint("seen")


def test_fingerprint_identifies_population(small_pools):
    a = _world(small_pools, seed=0)
    assert a.fingerprint() == _world(small_pools, seed=0).fingerprint()
    assert a.fingerprint() != _world(small_pools, seed=1).fingerprint()
    assert a.fingerprint("seen") != a.fingerprint("heldout")
    assert a.fingerprint() != _world(small_pools, seed=0, n_individuals=301).fingerprint()


def test_same_seed_same_world_different_seed_different(small_pools):
    a, b, c = _world(small_pools, seed=5), _world(small_pools, seed=5), _world(small_pools, seed=6)
    for arr in ("names", "values", "template_order"):
        np.testing.assert_array_equal(getattr(a, arr), getattr(b, arr))
        assert not np.array_equal(getattr(a, arr), getattr(c, arr))


def test_values_in_range_and_describe(small_pools):
    w = _world(small_pools)
    for j, a in enumerate(w.config.attributes):
        assert w.values[:, j].min() >= 0 and w.values[:, j].max() < w.pools.n_values(a)
    d = w.describe(5)
    assert d["name"] == w.full_name(5)
    for j, a in enumerate(w.config.attributes):
        assert d[a] == w.pools.value(a, w.values[5, j])


def test_attribute_subset_keeps_values_and_splits(small_pools):
    full = _world(small_pools)
    sub = _world(small_pools, attributes=("company", "birth_city"))
    cols = [ATTRIBUTES.index("company"), ATTRIBUTES.index("birth_city")]
    np.testing.assert_array_equal(sub.names, full.names)
    np.testing.assert_array_equal(sub.values, full.values[:, cols])
    np.testing.assert_array_equal(sub.template_order, full.template_order[:, cols])


def test_attribute_values_uniform_and_independent(stats):
    p = PoolSizes(first_names=100, last_names=100, cities=6, universities=5, majors=4, companies=7, years=2)
    w = make_population(DataConfig(n_individuals=6000, n_heldout=0, pool_sizes=p), seed=11)
    for j, a in enumerate(w.config.attributes):
        k = w.pools.n_values(a)
        stats.assert_matches(np.bincount(w.values[:, j], minlength=k), np.full(k, 1.0 / k))
    # birth city and current location are independent (same pool, 6 x 6 joint table)
    bc, cl = ATTRIBUTES.index("birth_city"), ATTRIBUTES.index("current_location")
    joint = np.bincount(w.values[:, bc] * 6 + w.values[:, cl], minlength=36)
    stats.assert_matches(joint, np.full(36, 1.0 / 36))
    # company and university too
    u, c = ATTRIBUTES.index("university"), ATTRIBUTES.index("company")
    stats.assert_matches(np.bincount(w.values[:, u] * 7 + w.values[:, c], minlength=35), np.full(35, 1.0 / 35))


# ---- the 20/5 template split ----------------------------------------------------------------


def test_template_split_sizes_and_disjoint(small_pools):
    w = _world(small_pools)
    cfg = w.config
    for i in range(len(w.names)):
        for j in range(len(cfg.attributes)):
            tr, ev = w.training_templates(i, j), w.evaluation_templates(i, j)
            assert len(tr) == 20 and len(ev) == 5
            assert len(set(tr.tolist())) == 20 and len(set(ev.tolist())) == 5
            assert not set(tr.tolist()) & set(ev.tolist())
            assert set(tr.tolist()) | set(ev.tolist()) == set(range(25))


def test_template_split_follows_config(small_pools):
    w = _world(small_pools, n_templates=10, n_train_templates=7)
    assert w.template_order.shape[2] == 10
    for i in (0, 123, 449):
        for j in range(6):
            tr, ev = set(w.training_templates(i, j).tolist()), set(w.evaluation_templates(i, j).tolist())
            assert len(tr) == 7 and len(ev) == 3 and tr | ev == set(range(10))


def test_template_split_differs_between_individuals_and_is_seeded(small_pools):
    a, b = _world(small_pools, seed=0), _world(small_pools, seed=1)
    splits = {tuple(sorted(a.evaluation_templates(i, 0).tolist())) for i in range(len(a.names))}
    assert len(splits) > len(a.names) // 2  # C(25, 5) = 53130 possible splits: almost all distinct
    assert not np.array_equal(a.template_order, b.template_order)
    np.testing.assert_array_equal(a.template_order, _world(small_pools, seed=0).template_order)


def test_each_template_equally_likely_to_be_held_out(stats):
    p = PoolSizes(first_names=100, last_names=100)
    w = make_population(DataConfig(n_individuals=4000, n_heldout=0, pool_sizes=p), seed=2)
    ev = w.template_order[:, :, 20:]
    for j in range(6):
        counts = np.bincount(ev[:, j].ravel(), minlength=25)
        stats.assert_matches(counts, np.full(25, 1 / 25))
