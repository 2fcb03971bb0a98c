"""Mechanistic data attribution of the recall head (docs/method.md §6.1).

Which training sequences build the head that, at an attribute's value, attends to the individual's name:

    heads      find_recall_head(run) -> RecallHead; head_scores(model, batch, n_attributes)
    view       HeadView(model, layer, head): the head as Q|K, V, O nn.Linear (what EK-FAC tracks)
    measures   MEASURES {"attention", "logit"}, Measure(name, modules, fn) for your own
    influence  exact_influence (Woodbury; the default), ekfac_influence (ekfac.py), compare (sign: > 0 promotes the
               head), separation (AUROC and top-share precision of a planted subset: the positive control)
    window     AttributionConfig, attribute(run, config) -> Attribution (saved in the run), load_attribution
    retrain    retrain_spec (remove / duplicate the top k%, random and matched controls, the planted oracle),
               planted_individuals, curriculum_spec
    lds        lds_spec (M random-subset retrains), lds (Spearman of summed scores vs the retrained measure)
    formation  measure_over_training, retrain_table, retrain_curves, effects (vs random, paired by seed)

Loaded lazily (PEP 562), like `workbench`: a name imports its module on first use.
"""

from __future__ import annotations

from workbench.lazy import lazy_exports

_EXPORTS = {
    "workbench.attribution.heads": ("RecallHead", "find_recall_head", "head_scores"),
    "workbench.attribution.shim": ("HeadView",),
    "workbench.attribution.measures": ("MEASURES", "Measure"),
    "workbench.attribution.influence": ("compare", "ekfac_influence", "exact_influence", "separation"),
    "workbench.attribution.window": ("Attribution", "AttributionConfig", "attribute", "load_attribution"),
    "workbench.attribution.retrain": ("curriculum_spec", "planted_individuals", "retrain_spec", "warmup_individuals"),
    "workbench.attribution.lds": ("lds", "lds_spec"),
    "workbench.attribution.formation": ("effects", "measure_over_training", "retrain_curves", "retrain_table"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
