"""Sweeps: a base config and a grid over config fields, each point an ordinary run directory, run on Ray.

spec = load_spec("cpu/scaling")           # or a TOML file, a dict
workbench.sweep(spec)                     # validate every point, then train them (local Ray)
table = sweep_table("checkpoints/sweeps/cpu-scaling")   # one row per trial, read from its run directory
fit = power_law_fit(table, "data.n_individuals")        # plateau end ~ a * N^b, bootstrap over seeds
"""

from workbench.sweeps.engine import STATUSES, Trial, read_plan, status_table, sweep_cost
from workbench.sweeps.results import (
    STUDY_POWER_LAW,
    PowerLaw,
    finetune_drops,
    finetune_summary,
    over_seeds,
    power_law_fit,
    replay_verdict,
    sweep_table,
)
from workbench.sweeps.spec import Resources, SweepSpec, load_spec, shipped_specs

__all__ = [
    "STATUSES",
    "STUDY_POWER_LAW",
    "PowerLaw",
    "Resources",
    "SweepSpec",
    "Trial",
    "finetune_drops",
    "finetune_summary",
    "load_spec",
    "over_seeds",
    "power_law_fit",
    "read_plan",
    "replay_verdict",
    "shipped_specs",
    "status_table",
    "sweep_cost",
    "sweep_table",
]
