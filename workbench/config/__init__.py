"""Configs: the schema (frozen, validated dataclasses), the validation helpers, the presets, and deriving
configs by dotted path (typed `assign`, the command line's `override`).

    schema.py     RunConfig and its sections (data, model, train, patch, finetune, edit)
    checks.py     check, check_int, check_number, check_indices: one-line errors naming the field
    presets.py    preset(name), PRESETS
    overrides.py  assign(config, {"train.lr": 1e-3}), override(config, ["train.lr=1e-3"])
"""

from workbench.config.checks import check, check_indices, check_int, check_number
from workbench.config.overrides import assign, override
from workbench.config.presets import PRESETS, preset
from workbench.config.schema import (
    ATTRIBUTES,
    EDIT_SELECTIONS,
    MAX_STEPS,
    SAMPLER_KINDS,
    SHIPPED_POOL_SIZES,
    SHIPPED_TEMPLATES,
    DataConfig,
    EditConfig,
    FinetuneConfig,
    ModelConfig,
    PackingConfig,
    PatchConfig,
    PoolSizes,
    RunConfig,
    SamplerConfig,
    TrainConfig,
)

__all__ = [
    "ATTRIBUTES",
    "EDIT_SELECTIONS",
    "MAX_STEPS",
    "PRESETS",
    "SAMPLER_KINDS",
    "SHIPPED_POOL_SIZES",
    "SHIPPED_TEMPLATES",
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
    "assign",
    "check",
    "check_indices",
    "check_int",
    "check_number",
    "override",
    "preset",
]
