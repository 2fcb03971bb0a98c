"""workbench: study how language models learn facts, hands-on (the method it reproduces: docs/method.md).

Public API (loaded lazily, PEP 562: `import workbench` stays cheap and TransformerLens loads only
when a model is needed):
    configs      RunConfig, DataConfig, ModelConfig, TrainConfig, SamplerConfig, PoolSizes,
                 PatchConfig, FinetuneConfig, EditConfig, PackingConfig, preset(name), PRESETS,
                 override(config, ["train.lr=1e-3"])
    data         BiographyData (population, tokenizer, biographies, samplers)
    experiments  train(config, out), resume(path), train_or_resume, finetune(base_run, step, n_new),
                 patch_grid(reference_run, reference_steps), reference_run(), Stopped,
                 sweep(spec) / plan_sweep(spec) (a grid of runs on Ray; specs: workbench.sweeps),
                 attribute(run) (data attribution of the recall head; retrains: workbench.attribution),
                 retrieve(run) (retrieval over the pre-training data and its compute multiplier: workbench.retrieval)
    analysis     load_run(path) -> Run, list_runs(root), Phases / detect_phases
Sub-packages: workbench.sweeps (specs, sweep tables, the scaling fit), workbench.attribution, workbench.retrieval,
workbench.patching, workbench.probes, workbench.viz, workbench.attention, workbench.escape (plateau-end estimators),
workbench.finetuning, workbench.stability, workbench.over_checkpoints (the cached loop over checkpoints).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from workbench.lazy import lazy_exports

try:
    __version__ = version("workbench")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"

_EXPORTS = {
    "workbench.config": (
        "PRESETS",
        "DataConfig",
        "EditConfig",
        "FinetuneConfig",
        "ModelConfig",
        "PackingConfig",
        "PatchConfig",
        "PoolSizes",
        "RunConfig",
        "SamplerConfig",
        "TrainConfig",
        "preset",
        "override",
    ),
    "workbench.data.biography_data": ("BiographyData",),
    "workbench.experiment": (
        "train",
        "resume",
        "train_or_resume",
        "finetune",
        "patch_grid",
        "reference_run",
        "sweep",
        "plan_sweep",
        "attribute",
        "retrieve",
    ),
    "workbench.training.stopping": ("Stopped",),
    "workbench.phases": ("Phases", "detect_phases"),
    "workbench.run": ("Run", "list_runs", "load_run"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
