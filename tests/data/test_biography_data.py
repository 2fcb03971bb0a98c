"""workbench.data.biography_data: BiographyData batches are a pure function of (seed, step)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from workbench.config import DataConfig, FinetuneConfig, PoolSizes, RunConfig, SamplerConfig
from workbench.data.batch import Batch
from workbench.data.biography_data import BiographyData

FIELDS = [f.name for f in dataclasses.fields(Batch)]


def _equal(a, b) -> bool:
    def same(x, y) -> bool:
        return x is None and y is None or x is not None and y is not None and torch.equal(x, y)

    return all(same(getattr(a, f), getattr(b, f)) for f in FIELDS)


def test_same_seed_identical_batches(tiny_config, tiny_data):
    other = BiographyData(tiny_config)
    assert other.tokenizer == tiny_data.tokenizer
    assert other.population.fingerprint() == tiny_data.population.fingerprint()
    for step in (0, 1, 17):
        assert _equal(other.train_batch(step), tiny_data.train_batch(step))


def test_different_seed_different_batches(tiny_config, tiny_data):
    other = BiographyData(tiny_config.replace(seed=1))
    assert other.population.fingerprint() != tiny_data.population.fingerprint()
    assert not torch.equal(other.train_batch(0).tokens, tiny_data.train_batch(0).tokens)


def test_train_batch_is_pure_in_step(tiny_config):
    data = BiographyData(tiny_config)
    b7 = data.train_batch(7)
    data.train_batch(3), data.train_batch(100), data.train_batch(0)
    assert _equal(data.train_batch(7), b7)
    fresh = BiographyData(tiny_config)
    assert _equal(fresh.train_batch(7), b7)  # no hidden state from earlier calls
    assert not torch.equal(data.train_batch(8).tokens, b7.tokens)


def test_train_batch_shape_and_population(tiny_data):
    b = tiny_data.train_batch(0)
    assert len(b) == tiny_data.config.train.batch_size
    assert set(b.individuals.tolist()) <= set(tiny_data.population.seen)


def test_batches_vary_across_steps_for_same_individual(tiny_config):
    # biographies are resampled for every sequence: the same individual gets different texts
    data = BiographyData(tiny_config.replace(data={"n_individuals": 1, "n_heldout": 0, "n_finetune": 0}))
    texts = {data.biographer.text(data.train_batch(s), r) for s in range(5) for r in range(16)}
    assert len(texts) > 40


def test_reuses_given_tokenizer_and_world(tiny_config, tiny_data):
    data = BiographyData(tiny_config, tokenizer=tiny_data.tokenizer, population=tiny_data.population)
    assert data.tokenizer is tiny_data.tokenizer and data.population is tiny_data.population
    assert _equal(data.train_batch(3), tiny_data.train_batch(3))


def test_finetune_sampler_draws_new_and_replayed(tiny_config, stats):
    cfg = tiny_config.replace(finetune=FinetuneConfig(base_run="base", n_new=20, replay_weight=0.5))
    data = BiographyData(cfg)
    w = data.population
    ids = torch.cat([data.train_batch(s).individuals for s in range(200)]).numpy()
    new = range(w.new.start, w.new.start + 20)
    assert set(ids.tolist()) <= set(w.seen) | set(new)
    n_pre = len(w.seen)
    expect = 0.5 * n_pre / (0.5 * n_pre + 20)
    frac = float((ids < n_pre).mean())
    assert abs(frac - expect) <= stats.binomial_tolerance(expect, len(ids))


def test_finetune_eval_group_limited_to_new_in_use(tiny_config):
    cfg = tiny_config.replace(finetune=FinetuneConfig(base_run="base", n_new=5))
    data = BiographyData(cfg)
    b = data.eval_batch("new", size=50)
    lo = data.population.new.start
    assert set(b.individuals.tolist()) <= set(range(lo, lo + 5))


def test_eval_batch_empty_group_raises(tiny_config):
    data = BiographyData(tiny_config.replace(data={"n_finetune": 0}))
    with pytest.raises(ValueError, match="'new'"):
        data.eval_batch("new")


def test_old_group_names_are_refused_with_the_new_name(tiny_data):
    with pytest.raises(ValueError, match="'train' is now 'seen'"):
        tiny_data.eval_batch("train")
    with pytest.raises(ValueError, match="'finetune' is now 'new'"):
        tiny_data.population.group("finetune")


def test_sampler_kind_from_config(tiny_config, stats):
    cfg = tiny_config.replace(
        data={"sampler": SamplerConfig(kind="celebrities", n_celebrities=2, weight_celebrities=1000.0)}
    )
    data = BiographyData(cfg)
    ids = torch.cat([data.train_batch(s).individuals for s in range(20)])
    n = cfg.data.n_individuals
    expect = 2 * 1000 / (2 * 1000 + (n - 2))  # mass on the two celebrities
    assert abs(float((ids < 2).float().mean()) - expect) <= stats.binomial_tolerance(expect, len(ids))


def test_stats(tiny_data):
    s = tiny_data.stats()
    d = tiny_data.config.data
    assert s["pool_sizes"] == dataclasses.asdict(d.pool_sizes)
    assert s["templates_per_attribute"] == {a: 25 for a in d.attributes}
    assert s["train_templates_per_individual"] == 20 and s["eval_templates_per_individual"] == 5
    assert s["no_knowledge_baseline"] == pytest.approx(d.no_knowledge_baseline)
    assert s["n_values"] == d.n_values
    assert s["vocab_size"] == tiny_data.tokenizer.vocab_size
    assert 0 < s["mean_biography_tokens"] <= s["longest_possible_biography_tokens"] == tiny_data.max_length


def test_no_knowledge_baseline_by_hand_in_data():
    cfg = RunConfig(
        data=DataConfig(
            n_individuals=50,
            n_heldout=10,
            attributes=("major", "company"),
            vocab_size=512,
            pool_sizes=PoolSizes(first_names=20, last_names=20, majors=10, companies=20),
        )
    )
    data = BiographyData(cfg)
    assert data.stats()["no_knowledge_baseline"] == pytest.approx((math.log(10) + math.log(20)) / 2)
    b = data.train_batch(0)
    # two attributes: two sentences, two values per biography
    assert (b.value_start.sum(1) == 2).all()
