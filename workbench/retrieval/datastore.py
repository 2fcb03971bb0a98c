"""The datastore: the pre-training corpus as retrievable documents, indexed with BM25 (`bm25s`).

A document is one biography (BOS + its sentences) of a seen individual on training templates:
either freshly generated (`source="generated"`: `docs_per_individual` per seen individual, from a stream
of their own) or the biographies actually trained on in steps [0, up_to_step) (`source="trained"`;
a packed sequence contributes each of its biographies, exact repeats are kept once). Evaluation
templates and held-out individuals never enter it (asserted on construction).

BM25 terms are the run's token ids (BOS and padding excluded): names and most values are single tokens
(the tokenizer saturates), so a query's name tokens carry the highest IDF, as a person's name does
in web search. bm25s does the scoring (Lucene's variant), which we would otherwise hand-write.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.config import check, check_int

SOURCES = ("generated", "trained")
_STREAM_DOCS = 24


@dataclass(frozen=True)
class DatastoreConfig:
    """What the datastore holds; validated on construction (against the run in `build_datastore`)."""

    source: str = "generated"
    docs_per_individual: int = 2  # source=generated
    up_to_step: int = 0  # source=trained: steps [0, up_to_step); 0 = the whole run

    def __post_init__(self) -> None:
        check(self.source in SOURCES, "datastore.source", " | ".join(SOURCES), self.source)
        check_int("datastore.docs_per_individual", self.docs_per_individual, 1, 64)
        check_int("datastore.up_to_step", self.up_to_step, 0)


class Datastore:
    """Documents (token arrays) with their individual and templates, and a BM25 index over them."""

    def __init__(self, tokens: list[np.ndarray], individuals: np.ndarray, templates: np.ndarray, bos_id: int):
        import bm25s

        self.tokens, self.bos_id = tokens, bos_id
        self.individuals = np.asarray(individuals, dtype=np.int64)  # [doc]
        self.templates = np.asarray(templates, dtype=np.int64)  # [doc, attribute]
        self.index = bm25s.BM25()
        self.index.index([_terms(t, bos_id) for t in tokens], show_progress=False)
        order = np.argsort(self.individuals, kind="stable")
        starts = np.searchsorted(self.individuals[order], np.unique(self.individuals))
        self._by_individual = dict(zip(np.unique(self.individuals).tolist(), np.split(order, starts[1:])))

    def __len__(self) -> int:
        return len(self.tokens)

    def search(self, queries: list[np.ndarray], m: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-m documents per query (token arrays): (doc indices [query, m], BM25 scores), best first."""
        check_int("m", m, 1, len(self))
        docs, scores = self.index.retrieve([_terms(q, self.bos_id) for q in queries], k=m, show_progress=False)
        return np.asarray(docs, dtype=np.int64), np.asarray(scores, dtype=np.float64)

    def of_individual(self, individual: int) -> np.ndarray:
        """The documents about `individual` (empty when it has none: a held-out individual)."""
        return self._by_individual.get(int(individual), np.zeros(0, dtype=np.int64))


def _terms(tokens: np.ndarray, bos_id: int) -> list[str]:
    return [str(t) for t in np.asarray(tokens).tolist() if t != bos_id]


def build_datastore(data, config: DatastoreConfig = DatastoreConfig()) -> Datastore:
    """The datastore of a run's data (`BiographyData`), as `config` describes it."""
    population, bio = data.population, data.biographer
    if config.source == "generated":
        ids = np.repeat(np.asarray(population.seen, dtype=np.int64), config.docs_per_individual)
        arrays = [bio.arrays(ids, "training", np.random.default_rng([data.config.seed, _STREAM_DOCS]))]
    else:
        last = config.up_to_step or data.config.train.steps
        check_int("datastore.up_to_step", last, 1, data.config.train.steps)
        arrays = [_trained_arrays(data, s) for s in range(last)]
    tokens, individuals, templates = [], [], []
    for a in arrays:
        tokens += [a["tokens"][i, : a["lengths"][i]] for i in range(len(a["lengths"]))]
        individuals.append(a["individuals"])
        templates.append(a["templates"])
    individuals, templates = np.concatenate(individuals), np.concatenate(templates)
    if (
        config.source == "trained"
    ):  # each distinct biography once; context-only individuals never (only reading knows them)
        _, keep = np.unique(np.array([t.tobytes() for t in tokens], dtype=object), return_index=True)
        keep = np.sort(keep)
        keep = keep[~np.isin(individuals[keep], np.asarray(data.population.context))]
        tokens, individuals, templates = [tokens[i] for i in keep], individuals[keep], templates[keep]
    _check_training_only(data, individuals, templates)
    return Datastore(tokens, individuals, templates, data.tokenizer.bos_id)


def _trained_arrays(data, step: int) -> dict:
    """The biographies of a step's training batch (each of a packed row's k), edits applied."""
    groups = data.train_individuals(step)
    rows = None if data.edit is None else data.edit.rows(step)
    a = data.biographer.arrays(groups.reshape(-1), "training", data._batch_rng(step))
    if rows is not None:
        keep = (np.asarray(rows)[:, None] * groups.shape[1] + np.arange(groups.shape[1])).reshape(-1)
        a = {k: v[keep] for k, v in a.items()}
    return a


def _check_training_only(data, individuals: np.ndarray, templates: np.ndarray) -> None:
    """Every document is about a seen individual and every sentence uses one of its training templates."""
    seen = np.asarray(data.population.seen)
    if not np.isin(individuals, seen).all():
        raise AssertionError("datastore: a document is about an individual outside the seen population")
    n_train = data.config.data.n_train_templates
    train_templates = data.population.template_order[individuals][:, :, :n_train]  # [doc, attribute, slot]
    if not (train_templates == templates[:, :, None]).any(-1).all():
        raise AssertionError("datastore: a document uses an evaluation template")
