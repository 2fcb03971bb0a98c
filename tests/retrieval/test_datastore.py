"""workbench.retrieval.datastore: training templates of seen individuals only, found by name."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.retrieval.datastore import DatastoreConfig, _check_training_only, build_datastore
from workbench.retrieval.study import name_recall


def _assert_training_only(data, store) -> None:
    """Independently of the datastore's own check: decode each document's sentences' templates."""
    population, n_train = data.population, data.config.data.n_train_templates
    seen = set(population.seen)
    for d in range(len(store)):
        ind = int(store.individuals[d])
        assert ind in seen
        for a in range(len(data.config.data.attributes)):
            assert store.templates[d, a] in set(population.template_order[ind, a, :n_train].tolist())
        # the document's tokens are that individual's: its name appears in every sentence
        name = data.biographer.name_tokens(ind)
        toks = store.tokens[d].tolist()
        n_hits = sum(toks[i : i + len(name)] == name for i in range(len(toks)))
        assert n_hits == len(data.config.data.attributes)


def test_generated_datastore_holds_training_templates_of_seen_individuals(packed_run, store):
    data = packed_run.data
    assert len(store) == 2 * len(data.population.seen)  # docs_per_individual=2
    assert set(store.individuals.tolist()) == set(data.population.seen)
    assert not set(store.individuals.tolist()) & set(data.population.heldout)
    _assert_training_only(data, store)


def test_trained_datastore_holds_every_biography_trained_on(packed_run):
    data = packed_run.data
    store = build_datastore(data, DatastoreConfig(source="trained", up_to_step=3))
    _assert_training_only(data, store)
    trained = {
        tuple(
            data.biographer.arrays(data.train_individuals(s).reshape(-1), "training", data._batch_rng(s))["tokens"][i][
                :n
            ].tolist()
        )
        for s in range(3)
        for i, n in enumerate(
            data.biographer.arrays(data.train_individuals(s).reshape(-1), "training", data._batch_rng(s))["lengths"]
        )
    }
    assert {tuple(t.tolist()) for t in store.tokens} == trained
    assert len(store) == len(trained)  # exact repeats kept once


def test_the_check_rejects_held_out_individuals_and_evaluation_templates(packed_run):
    data = packed_run.data
    population, n_train, n_attr = data.population, data.config.data.n_train_templates, len(data.config.data.attributes)
    ind = np.array([population.seen[0]])
    ok = population.template_order[ind, :, 0]  # [1, attribute]: training templates
    _check_training_only(data, ind, ok)
    with pytest.raises(AssertionError, match="evaluation template"):
        _check_training_only(data, ind, population.template_order[ind, :, n_train])
    with pytest.raises(AssertionError, match="outside the seen"):
        _check_training_only(data, np.array([population.heldout[0]]), np.zeros((1, n_attr), dtype=np.int64))


def test_queried_with_a_name_retrieval_finds_that_individual(packed_run, store):
    seen = np.asarray(packed_run.data.population.seen)
    recall = name_recall(store, packed_run.data, seen)
    print(f"recall@1 by name over {len(seen)} individuals: {recall:.3f}")
    assert recall >= 0.95
    # and the top two are both of that individual's documents (docs_per_individual=2)
    name = np.asarray(packed_run.data.biographer.name_tokens(int(seen[5])))
    top, scores = store.search([name], 2)
    assert (store.individuals[top[0]] == seen[5]).all() and scores[0, 0] >= scores[0, 1] > 0


def test_bad_datastore_config_raises_naming_the_field(packed_run):
    with pytest.raises(ValueError, match="datastore.source"):
        DatastoreConfig(source="web")
    with pytest.raises(ValueError, match="datastore.docs_per_individual"):
        DatastoreConfig(docs_per_individual=0)
    with pytest.raises(ValueError, match="datastore.up_to_step"):
        build_datastore(packed_run.data, DatastoreConfig(source="trained", up_to_step=10_000))
