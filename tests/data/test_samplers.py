"""workbench.data.samplers: distributions match on large seeded samples; purity in (seed, step)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workbench.config import DataConfig, SamplerConfig
from workbench.data.samplers import (
    Sampler,
    SequentialSampler,
    WarmupSampler,
    WeightedSampler,
    finetune_sampler,
    make_sampler,
    warmup_steps,
)

N = 50
BATCH = 500
STEPS = 100  # 50,000 draws per distribution


def _draw(sampler, steps=range(STEPS)):
    return np.concatenate([sampler.individuals(s) for s in steps])


def _counts(draws, ids):
    ids = np.asarray(ids)
    pos = np.searchsorted(ids, draws)
    assert np.array_equal(ids[pos], draws), "drew an id outside the sampler's individuals"
    return np.bincount(pos, minlength=len(ids))


def test_uniform(stats):
    ids = np.arange(10, 10 + N)  # global ids need not start at 0
    s = make_sampler(SamplerConfig(kind="uniform"), ids, BATCH, 1000, seed=0)
    np.testing.assert_allclose(s.probabilities(0), np.full(N, 1 / N))
    draws = _draw(s)
    assert draws.shape == (STEPS * BATCH,)
    stats.assert_matches(_counts(draws, ids), np.full(N, 1 / N))


@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.0])
def test_power_law(stats, alpha):
    ids = np.arange(N)
    s = make_sampler(SamplerConfig(kind="power_law", alpha=alpha), ids, BATCH, 1000, seed=1)
    p = (np.arange(1, N + 1) ** -alpha) / (np.arange(1, N + 1) ** -alpha).sum()
    np.testing.assert_allclose(s.probabilities(0), p, rtol=1e-9)
    stats.assert_matches(_counts(_draw(s), ids), p)


def test_power_law_zipf_ratio(stats):
    # alpha = 1: individual 0 is drawn twice as often as individual 1, n times as often as n - 1
    s = make_sampler(SamplerConfig(kind="power_law", alpha=1.0), range(N), BATCH, 1000, seed=2)
    c = _counts(_draw(s), np.arange(N))
    harmonic = sum(1 / k for k in range(1, N + 1))
    p0 = 1 / harmonic
    n = STEPS * BATCH
    assert abs(c[0] / n - p0) <= stats.binomial_tolerance(p0, n)
    p1 = 0.5 / harmonic
    assert abs(c[1] / n - p1) <= stats.binomial_tolerance(p1, n)


def test_power_law_alpha_zero_is_uniform():
    s = make_sampler(SamplerConfig(kind="power_law", alpha=0.0), range(N), BATCH, 1000, seed=0)
    np.testing.assert_allclose(s.probabilities(0), np.full(N, 1 / N))


def test_celebrities(stats):
    n_c, w = 5, 10.0
    s = make_sampler(
        SamplerConfig(kind="celebrities", n_celebrities=n_c, weight_celebrities=w), range(N), BATCH, 1000, seed=3
    )
    p = np.ones(N)
    p[:n_c] = w
    p /= p.sum()
    np.testing.assert_allclose(s.probabilities(0), p, rtol=1e-9)
    draws = _draw(s)
    stats.assert_matches(_counts(draws, np.arange(N)), p)
    frac = float((draws < n_c).mean())
    expect = n_c * w / (n_c * w + (N - n_c))
    assert abs(frac - expect) <= stats.binomial_tolerance(expect, len(draws))


@pytest.mark.parametrize("w", [0.1, 1.0, 3.0])
def test_finetune_replay_mixture(stats, w):
    pre, new = range(0, 200), range(300, 340)  # held-out individuals (200..299) in between
    s = finetune_sampler(new, pre, w, BATCH, seed=4)
    draws = _draw(s)
    assert set(np.unique(draws)) <= set(pre) | set(new)
    frac = float((draws < 200).mean())
    expect = w * len(pre) / (w * len(pre) + len(new))
    assert abs(frac - expect) <= stats.binomial_tolerance(expect, len(draws))
    # within each group, uniform
    ids = np.array(list(pre) + list(new))
    p = np.concatenate([np.full(len(pre), w), np.ones(len(new))])
    stats.assert_matches(_counts(draws, ids), p / p.sum())


def test_finetune_without_replay_draws_only_new():
    s = finetune_sampler(range(300, 340), range(200), 0.0, BATCH, seed=0)
    draws = _draw(s, range(10))
    assert draws.min() >= 300 and draws.max() < 340
    with pytest.raises(ValueError, match="replay_weight"):
        finetune_sampler(range(300, 340), range(200), -1.0, BATCH, seed=0)


def test_warmup_steps_formula():
    cfg = SamplerConfig(kind="warmup", indiv_warmup=10, epochs_warmup=2.5)
    assert warmup_steps(cfg, 4) == math.ceil(2.5 * 10 / 4)
    assert warmup_steps(SamplerConfig(kind="warmup", indiv_warmup=64, epochs_warmup=3), 16) == 3 * 64 // 16
    assert warmup_steps(SamplerConfig(kind="warmup", epochs_warmup=0), 16) == 0


def test_warmup_length_in_steps_overrides_epochs():
    cfg = SamplerConfig(kind="warmup", indiv_warmup=8, epochs_warmup=10, warmup_steps=7)
    assert warmup_steps(cfg, 4) == 7  # not ceil(10 * 8 / 4) = 20
    s = make_sampler(cfg, range(N), 64, 1000, seed=5)
    assert s.individuals(6).max() < 8 and s.individuals(7).max() >= 8
    with pytest.raises(ValueError, match="sampler.warmup_steps"):
        SamplerConfig(kind="warmup", warmup_steps=-1)


def test_warmup_switches_at_exactly_warmup_steps(stats):
    k = 8
    cfg = SamplerConfig(kind="warmup", indiv_warmup=k, epochs_warmup=10)
    batch = 64
    ws = warmup_steps(cfg, batch)
    s = make_sampler(cfg, range(N), batch, 1000, seed=5)
    assert isinstance(s, WarmupSampler)
    for step in list(range(ws)):
        assert s.individuals(step).max() < k
        np.testing.assert_allclose(s.probabilities(step)[:k], np.full(k, 1 / k))
    warm = _draw(s, range(ws))
    stats.assert_matches(np.bincount(warm, minlength=k), np.full(k, 1 / k))
    # from step ws on: all N individuals; a batch of 64 from only the first 8 of 50 has
    # probability (8/50)^64, so the first post-warm-up batch must reach beyond them
    for step in (ws, ws + 1, ws + 50):
        assert s.individuals(step).max() >= k
        np.testing.assert_allclose(s.probabilities(step), np.full(N, 1 / N))
    after = _draw(s, range(ws, ws + STEPS * BATCH // batch))
    stats.assert_matches(np.bincount(after, minlength=N), np.full(N, 1 / N))


def test_warmup_through_biography_data(tiny_config):
    from workbench.data.biography_data import BiographyData

    cfg = tiny_config.replace(data={"sampler": SamplerConfig(kind="warmup", indiv_warmup=4, epochs_warmup=8)})
    data = BiographyData(cfg, tokenizer=None)
    ws = warmup_steps(cfg.data.sampler, cfg.train.batch_size)
    for step in range(ws):
        assert int(data.train_batch(step).individuals.max()) < 4
    assert any(int(data.train_batch(step).individuals.max()) >= 4 for step in range(ws, ws + 3))
    assert int(data.train_batch(ws).individuals.max()) >= 4  # (4/64)^16: certain beyond doubt


def test_warmup_on_given_individuals(stats):
    """warmup_ids (e.g. chosen by attribution) replace the first indiv_warmup individuals, uniformly."""
    chosen = (3, 11, 12, 40)
    cfg = SamplerConfig(kind="warmup", warmup_ids=chosen, epochs_warmup=20)
    assert warmup_steps(cfg, 8) == math.ceil(20 * len(chosen) / 8)  # epochs over the given individuals
    s = make_sampler(cfg, range(N), 8, 1000, seed=2)
    warm = _draw(s, range(warmup_steps(cfg, 8)))
    assert set(warm.tolist()) == set(chosen)
    stats.assert_matches(np.bincount(warm, minlength=N), np.isin(np.arange(N), chosen) / len(chosen))
    assert set(_draw(s, range(10, 30)).tolist()) - set(chosen)
    with pytest.raises(ValueError, match=r"sampler.warmup_ids\[\]=50 is out of range: allowed an integer in \[0, 49\]"):
        DataConfig(n_individuals=N, n_heldout=0, sampler=SamplerConfig(kind="warmup", warmup_ids=(1, 50)))
    with pytest.raises(ValueError, match="sampler.warmup_ids=.*distinct"):
        SamplerConfig(kind="warmup", warmup_ids=(1, 1))


def test_sequential_visits_groups_in_order():
    n_groups, n_repeats, total = 4, 2, 80
    ids = np.arange(100, 100 + 40)
    s = make_sampler(SamplerConfig(kind="sequential", n_groups=n_groups, n_repeats=n_repeats), ids, 32, total, seed=6)
    assert isinstance(s, SequentialSampler)
    groups = [s.group_at(step) for step in range(total)]
    steps_per_phase = total // (n_groups * n_repeats)
    expected = [(step // steps_per_phase) % n_groups for step in range(total)]
    assert groups == expected
    # each group is an equal, contiguous block of ids, in order; together they cover all
    blocks = [ids[s.bounds[g] : s.bounds[g + 1]] for g in range(n_groups)]
    assert [len(b) for b in blocks] == [10] * 4
    assert np.array_equal(np.concatenate(blocks), ids)
    for step in range(total):
        g = groups[step]
        drawn = s.individuals(step)
        assert drawn.min() >= blocks[g][0] and drawn.max() <= blocks[g][-1]
    # after the last step, stays in the last group
    assert s.group_at(total + 5) == groups[-1]


def test_sequential_group_uniform(stats):
    s = SequentialSampler(np.arange(N), 2, 1, 100, BATCH, seed=7)
    draws = _draw(s, range(50))
    stats.assert_matches(np.bincount(draws, minlength=N)[:25], np.full(25, 1 / 25))
    assert draws.max() < 25


def test_sampler_is_pure_function_of_seed_and_step():
    s = make_sampler(SamplerConfig(kind="power_law"), range(N), 64, 1000, seed=8)
    a5 = s.individuals(5)
    s.individuals(3), s.individuals(100)
    assert np.array_equal(s.individuals(5), a5)
    fresh = make_sampler(SamplerConfig(kind="power_law"), range(N), 64, 1000, seed=8)
    assert np.array_equal(fresh.individuals(5), a5)
    assert not np.array_equal(s.individuals(6), a5)
    other = make_sampler(SamplerConfig(kind="power_law"), range(N), 64, 1000, seed=9)
    assert not np.array_equal(other.individuals(5), a5)


def test_weighted_sampler_rejects_bad_weights():
    with pytest.raises(ValueError, match="weights"):
        WeightedSampler(np.arange(3), np.array([1.0, -1.0, 1.0]), 4, 0)
    with pytest.raises(ValueError, match="weights"):
        WeightedSampler(np.arange(3), np.zeros(3), 4, 0)
    with pytest.raises(ValueError, match="weights"):
        WeightedSampler(np.arange(3), np.ones(2), 4, 0)


def test_zero_weight_individual_never_drawn():
    s = WeightedSampler(np.arange(4), np.array([1.0, 0.0, 1.0, 0.0]), 1000, 0)
    draws = _draw(s, range(20))
    assert set(np.unique(draws)) == {0, 2}


def test_probabilities_sum_to_one():
    for cfg in (
        SamplerConfig(kind="uniform"),
        SamplerConfig(kind="power_law", alpha=1.5),
        SamplerConfig(kind="celebrities", n_celebrities=3),
        SamplerConfig(kind="warmup", indiv_warmup=5),
        SamplerConfig(kind="sequential", n_groups=3),
    ):
        s = make_sampler(cfg, range(N), 16, 100, seed=0)
        for step in (0, 99):
            p = s.probabilities(step)
            assert p.shape == (N,) and abs(p.sum() - 1) < 1e-9 and (p >= 0).all()


def test_base_sampler_batch_size():
    assert Sampler(np.arange(5), 7, 0).individuals(0).shape == (7,)
