"""Probes of the MLP key-value memory (docs/method.md §4.7, §4.8, §5).

    localise(model, data, n=64, ...)                 ablation / patching of MLP layers at the name
    localisation_over_checkpoints(run, steps=None)   ... at a run's checkpoints
    probe_accuracy(model, data, n_train, n_test)     linear probes of attribute values at the name
    probes_over_checkpoints(run, steps=None)         ... at a run's checkpoints
    fit_probe(x, y, n_classes)                       the probe itself (multinomial logistic regression)
    key_value_view(model, data, individual, layer)   top-k key neurons and what they write
    overwrite(model_before, model_after, data, individuals, layer)   keys / values changed by fine-tuning
    overwrite_over_checkpoints(finetune_run)         ... at a fine-tuning run's checkpoints
    OverwriteTracker                                 ... as a training callback
    ToyMemoryConfig, run_toy_memory(cfg)             the toy associative memory
Figures: workbench.viz (plot_localisation, plot_probes, plot_toy_memory).
"""

from workbench.probes.keyvalue import (
    KEYS_CHANGED_BELOW,
    key_value_view,
    overwrite,
    overwrite_details,
    overwrite_over_checkpoints,
)
from workbench.probes.linear import LinearProbe, fit_probe, probe_accuracy, probes_over_checkpoints
from workbench.probes.localisation import localisation_over_checkpoints, localise
from workbench.probes.toy_memory import ToyMemoryConfig, run_toy_memory
from workbench.probes.tracking import OverwriteTracker

__all__ = [
    "KEYS_CHANGED_BELOW",
    "key_value_view",
    "overwrite",
    "overwrite_details",
    "overwrite_over_checkpoints",
    "LinearProbe",
    "fit_probe",
    "probe_accuracy",
    "probes_over_checkpoints",
    "localisation_over_checkpoints",
    "localise",
    "ToyMemoryConfig",
    "run_toy_memory",
    "OverwriteTracker",
]
