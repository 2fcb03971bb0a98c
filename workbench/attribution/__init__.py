"""Mechanistic data attribution of the recall head (docs/method.md §6.1, arXiv 2601.21996).

Which training sequences build the head that, at an attribute's value, attends to the individual's name:

    heads      find_recall_head(run) -> RecallHead; head_scores(model, batch, n_attributes)
    view       HeadView(model, layer, head): the head as Q|K, V, O nn.Linear (what EK-FAC tracks)
    measures   MEASURES {"attention", "logit"}, Measure(name, modules, fn) for your own
    influence  ekfac_influence (ekfac.py), exact_influence (Woodbury), compare (sign: > 0 promotes the head)
    window     AttributionConfig, attribute(run, config) -> Attribution (saved in the run), load_attribution
    retrain    retrain_spec (remove / duplicate the top k%, random and matched controls), curriculum_spec
    formation  measure_over_training, retrain_table, retrain_curves, effects (vs random, paired by seed)

Loaded lazily (PEP 562), like `workbench`: a name imports its module on first use.
"""

from __future__ import annotations

from workbench.lazy import lazy_exports

_EXPORTS = {
    "workbench.attribution.heads": ("RecallHead", "find_recall_head", "head_scores"),
    "workbench.attribution.shim": ("HeadView",),
    "workbench.attribution.measures": ("MEASURES", "Measure"),
    "workbench.attribution.influence": ("compare", "ekfac_influence", "exact_influence"),
    "workbench.attribution.window": ("Attribution", "AttributionConfig", "attribute", "load_attribution"),
    "workbench.attribution.retrain": ("curriculum_spec", "retrain_spec", "warmup_individuals"),
    "workbench.attribution.formation": ("effects", "measure_over_training", "retrain_curves", "retrain_table"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
