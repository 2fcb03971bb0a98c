"""workbench.data.packing: k biographies per training sequence, labels aligned, a pure function of (seed, step)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.config import PackingConfig, RunConfig, preset
from workbench.data.biography_data import BiographyData
from workbench.data.kinds import BOS, PAD
from workbench.metrics import value_scores


def _packed(k: int = 3, q: float = 0.5, seed: int = 0) -> BiographyData:
    return BiographyData(preset("tiny", data={"packing": {"k": k, "q_same": q}}).replace(seed=seed))


def test_default_is_off_and_unpacked_batches_are_unchanged(tiny_config):
    assert tiny_config.data.packing == PackingConfig(k=1, q_same=0.0)
    data = BiographyData(tiny_config)
    batch = data.train_batch(3)
    assert batch.packed_individuals is None and batch.n_biographies == 1
    # exactly the single-biography batch the sampler's draws give
    rng = np.random.default_rng([tiny_config.seed, 21, 3])
    alone = data.biographer.batch(data.sampler.individuals(3), "training", rng)
    assert torch.equal(batch.tokens, alone.tokens) and torch.equal(batch.individuals, alone.individuals)


def test_every_biography_of_a_packed_row_keeps_its_own_labels():
    data = _packed()
    for step in (0, 5):
        batch = data.train_batch(step)
        groups = data.train_individuals(step)
        assert batch.packed_individuals.tolist() == groups.tolist()
        assert torch.equal(batch.individuals, batch.packed_individuals[:, 0])
        # rebuild each biography alone from the same draws and find it, in order, inside its row
        rng = np.random.default_rng([data.config.seed, 21, step])
        alone = data.biographer.arrays(groups.reshape(-1), "training", rng)
        for r in range(len(batch)):
            at = 0
            for j in range(3):
                i, n = r * 3 + j, int(alone["lengths"][r * 3 + j])
                for name in ("tokens", "kind", "attribute", "value_start"):
                    got = getattr(batch, name)[r, at : at + n].numpy()
                    assert (got == alone[name][i, :n]).all(), (step, r, j, name)
                assert (batch.biography[r, at : at + n] == j).all()
                at += n
            assert (batch.kind[r, at:] == PAD).all() and (batch.biography[r, at:] == -1).all()
            assert int((batch.kind[r] == BOS).sum()) == 3


def test_packed_batches_are_a_pure_function_of_seed_and_step():
    a, b = _packed(), _packed()
    for step in (0, 1, 9):
        x, y = a.train_batch(step), b.train_batch(step)
        assert torch.equal(x.tokens, y.tokens) and torch.equal(x.packed_individuals, y.packed_individuals)
    assert not torch.equal(_packed(seed=1).train_batch(0).tokens, a.train_batch(0).tokens)
    # the same step twice, in any order, gives the same batch
    assert torch.equal(a.train_batch(4).tokens, (a.train_batch(7), a.train_batch(4))[1].tokens)


def test_q_same_sets_how_often_an_individual_appears_twice():
    def twice(q: float) -> float:
        data = _packed(k=3, q=q)
        groups = np.concatenate([data.train_individuals(s) for s in range(200)])
        return float(np.mean([len(set(g)) < 3 for g in groups.tolist()]))

    never, half, always = twice(0.0), twice(0.5), twice(1.0)
    assert always == 1.0
    # chance repeats among 64 individuals (k=3) are ~5%; q adds its share
    assert never < 0.12 and 0.4 < half < 0.65


def test_metrics_score_every_biography_of_a_packed_row():
    data = _packed(k=2, q=0.0)
    batch = data.train_batch(0)
    n_attr = len(data.config.data.attributes)
    logits = torch.randn(*batch.tokens.shape, data.tokenizer.vocab_size)
    scores = value_scores(logits, batch, n_attr)
    assert scores.loss.shape == (2 * len(batch), n_attr)
    # row r's second biography scored alone, from the logits of its own span, gives the same loss
    r, starts = 1, (batch.kind[1] == BOS).nonzero()[:, 0].tolist()
    end = int(batch.mask[r].sum())
    second = batch[[r]]
    span = slice(starts[1], end)
    from workbench.data.batch import Batch

    alone = Batch(
        second.tokens[:, span],
        second.kind[:, span],
        second.attribute[:, span],
        second.value_start[:, span],
        second.individuals,
    )
    own = value_scores(logits[[r]][:, span], alone, n_attr)
    assert torch.allclose(scores.loss[2 * r + 1], own.loss[0])
    assert torch.equal(scores.correct[2 * r + 1], own.correct[0])


def test_packed_context_fits_k_biographies():
    data = _packed(k=3)
    assert data.max_length == 3 * data.biographer.max_length()
    assert int(data.train_batch(0).mask.sum(1).max()) <= data.max_length


@pytest.mark.parametrize(
    "packing, field",
    [
        ({"k": 0}, "packing.k"),
        ({"k": 17}, "packing.k"),
        ({"k": 2, "q_same": 1.5}, "packing.q_same"),
        ({"k": 1, "q_same": 0.3}, "packing.q_same"),
    ],
)
def test_bad_packing_raises_naming_the_field(packing, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        preset("tiny", data={"packing": packing})


def test_packing_round_trips_through_the_saved_config():
    cfg = preset("tiny", data={"packing": {"k": 2, "q_same": 0.25}})
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    old = cfg.to_dict()
    del old["data"]["packing"]  # a config.json written before packing existed
    assert RunConfig.from_dict(old).data.packing == PackingConfig()
