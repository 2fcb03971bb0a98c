"""Run names and where runs go: the one place the CLI, sweeps, grids, fine-tuning and notebooks take them from.

run_name(config)          <preset>-seed<seed>; a patched twin patch-ref<step>-start<start>;
                          a fine-tuning run ft<n_new>-replay<w>
default_run_path(config)  a patched twin or fine-tuning run beside its reference / base run
                          (<reference>-<run_name>); any other run <checkpoints root>/<run_name>
checkpoints_root()        $WORKBENCH_CHECKPOINTS, else the nearest checkpoints/ folder
under_root(path)          a relative path taken from the checkpoints root (sweep specs' paths)
point_name(values, ...)   a sweep point's trial name: the spec's pattern, else from the values that vary
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench.config import RunConfig


def run_name(config: RunConfig) -> str:
    """The default name of a run of `config` (see the module docstring)."""
    if config.patch is not None:
        return f"patch-ref{config.patch.reference_step}-start{config.patch.start_step}"
    if config.finetune is not None:
        return f"ft{config.finetune.n_new}-replay{config.finetune.replay_weight:g}"
    return f"{config.preset}-seed{config.seed}"


def default_run_path(config: RunConfig) -> Path:
    """Where a run of `config` goes when no folder is given (see the module docstring)."""
    parent = (
        config.patch.reference_run
        if config.patch is not None
        else config.finetune.base_run
        if config.finetune is not None
        else None
    )
    if parent is not None:
        p = Path(parent)
        return p.with_name(f"{p.name}-{run_name(config)}")
    return checkpoints_root() / run_name(config)


def checkpoints_root() -> Path:
    """$WORKBENCH_CHECKPOINTS, else the nearest `checkpoints/` folder in the working directory or above."""
    env = os.environ.get("WORKBENCH_CHECKPOINTS")
    if env:
        return Path(env)
    for d in (Path.cwd(), *Path.cwd().parents):
        if (d / "checkpoints").is_dir():
            return d / "checkpoints"
    return Path("checkpoints")


def under_root(path: str | Path) -> Path:
    """`path` as given when absolute, else under the checkpoints root (how sweep specs name runs and folders)."""
    p = Path(path)
    return p if p.is_absolute() else checkpoints_root() / p


def point_name(
    values: Mapping[str, Any], varying: Mapping[str, Any], pattern: str = "", case_name: str | None = None
) -> str:
    """A sweep point's trial name: `pattern` with {dotted.path} replaced by the point's values, else the case's
    name followed by <leaf><value> for each varying path (the whole path where two varying paths share a leaf)."""
    if pattern:

        def sub(m: re.Match) -> str:
            if m.group(1) not in values:
                raise ValueError(
                    f"trial_name={pattern!r}: {m.group(1)} is not a path of the sweep; allowed {sorted(values)}"
                )
            return _fmt(values[m.group(1)])

        return re.sub(r"\{([\w.]+)\}", sub, pattern)
    parts = [str(case_name)] if case_name else []
    parts += [f"{_leaf(k, varying)}{_fmt(v)}" for k, v in varying.items()]
    return "-".join(parts) or "base"


def _leaf(path: str, varying: Mapping[str, Any]) -> str:
    leaf = path.rsplit(".", 1)[-1]
    return leaf if sum(k.rsplit(".", 1)[-1] == leaf for k in varying) == 1 else path


def _fmt(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "_".join(_fmt(v) for v in value)
    text = f"{value:g}" if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else str(value)
    return re.sub(r"[^\w.+-]", "_", text)
