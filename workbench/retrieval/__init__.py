"""Test-time retrieval over the pre-training biographies, and the compute multiplier (docs/method.md §6.2).

    datastore   DatastoreConfig, build_datastore(data) -> Datastore (BM25 over training-template biographies)
    augment     MODES (none, bm25, oracle, vote), augmented_items: per (biography, attribute, mode) scores
    multiplier  equivalent_step, compute_multiplier, multiplier_interval (s*/s on the run's baseline curve)
    study       RetrievalConfig, retrieve(run, config) -> Retrieval (saved in the run), load_retrieval
    reading     reading_test(run): held-out individuals with [own], [other], both in either order, in context

Retrieval needs room in the context: train with `data.packing.k` > 1 (k biographies per training sequence,
`workbench.data.packing`), which also gives the model a reason to read facts from its context.
Loaded lazily (PEP 562): a name imports its module on first use.
"""

from __future__ import annotations

from workbench.lazy import lazy_exports

_EXPORTS = {
    "workbench.retrieval.datastore": ("Datastore", "DatastoreConfig", "build_datastore"),
    "workbench.retrieval.augment": ("MODES", "augmented_items"),
    "workbench.retrieval.multiplier": ("Multiplier", "compute_multiplier", "equivalent_step", "multiplier_interval"),
    "workbench.retrieval.study": ("Retrieval", "RetrievalConfig", "load_retrieval", "name_recall", "retrieve"),
    "workbench.retrieval.reading": ("CONDITIONS", "reading_test"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
