"""workbench: study how language models learn facts, hands-on (Zucchet et al. 2025, arXiv 2503.21676).

Public API:
    configs      RunConfig, DataConfig, ModelConfig, TrainConfig, SamplerConfig, PoolSizes,
                 PatchConfig, FinetuneConfig, preset(name), PRESETS
    data         BiographyData (world, tokenizer, biographies, samplers)
    training     train(config, out), resume(path)
    analysis     load_run(path) -> Run, list_runs(root), Phases / detect_phases
Sub-packages: workbench.patching, workbench.probes, workbench.viz, workbench.attention,
workbench.finetune, workbench.stability.
"""

from workbench.config import (PRESETS, DataConfig, FinetuneConfig, ModelConfig, PatchConfig, PoolSizes, RunConfig,
                              SamplerConfig, TrainConfig, preset)
from workbench.data.corpus import BiographyData
from workbench.phases import Phases, detect_phases
from workbench.run import Run, list_runs, load_run, reference_run
from workbench.training.api import resume, train

__all__ = [
    "PRESETS", "DataConfig", "FinetuneConfig", "ModelConfig", "PatchConfig", "PoolSizes", "RunConfig",
    "SamplerConfig", "TrainConfig", "preset", "BiographyData", "Phases", "detect_phases", "Run", "list_runs",
    "load_run", "reference_run", "resume", "train",
]
