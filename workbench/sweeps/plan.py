"""Planning a sweep: every point's config built and validated, and its run directory checked, before any trial.

The sweep package knows no feature: the composition root passes `point_config(spec, values) -> RunConfig`, which
builds a point from the spec's base (a preset, or a feature's base table) through that feature's own builder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.config import RunConfig
from workbench.naming import checkpoints_root, under_root
from workbench.sweeps.engine import Trial
from workbench.sweeps.spec import SweepSpec, load_spec
from workbench.training.rundir import RunDir

PointConfig = Callable[[SweepSpec, Mapping[str, Any]], RunConfig]


@dataclass(frozen=True)
class Sweep:
    """A planned sweep: its spec, folder and validated trials (one run directory each)."""

    spec: SweepSpec
    root: Path
    trials: list[Trial]


def sweep_root(spec: str | Path | dict | SweepSpec) -> Path:
    """The folder of a sweep's run directories: `out`, else `<checkpoints root>/sweeps/<name>`."""
    spec = load_spec(spec)
    return (under_root(spec.out) if spec.out else checkpoints_root() / "sweeps" / spec.name).absolute()


def plan(spec: str | Path | dict | SweepSpec, point_config: PointConfig) -> Sweep:
    """Every point of a sweep spec (a TOML file, a shipped spec name, a dict or a SweepSpec) with its config
    built by `point_config` and validated, and its run directory checked (absent, or holding the same config),
    before any trial starts: the first bad point is a ValueError naming it and the field."""
    spec = load_spec(spec)
    root = sweep_root(spec)
    trials = []
    for name, values in spec.points():
        try:
            config = point_config(spec, values)
            RunDir(root / name).check_resumable(config, longer=spec.budget is not None)  # a budget extends runs
        except ValueError as e:
            raise ValueError(f"sweep {spec.name}, point {name}: {e}") from e
        trials.append(Trial(name, config, (root / name).absolute(), values))
    return Sweep(spec, root, trials)
