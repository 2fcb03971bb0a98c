"""A grid of patched runs (docs/method.md §4.3): one run per (reference step, start step), plus the baseline.

Each patched run retrains the reference run's config (same seed, so the same initial weights and
batches) with its attention patterns replaced by those of the reference checkpoint at
`reference_step`, from `start_step` on. Runs live under `<out_root>/patch-ref<step>-start<start>`;
finished runs are skipped, unfinished ones resumed, so a grid can be stopped and re-run. The
unpatched reference run itself is the baseline row (reference_step and start_step missing).

    df = workbench.patch_grid("checkpoints/cpu-quick-seed0", reference_steps=[0, 438, 3500])
    plot_grid(df, grid_curves(df))
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.atomic import atomic_write_csv
from workbench.config import PatchConfig, RunConfig, assign
from workbench.naming import run_name, under_root
from workbench.patching.twin import validate_patch
from workbench.run import Run, load_run
from workbench.training.rundir import RunDir

GRID_COLUMNS = (
    "reference_step",
    "start_step",
    "run",
    "final_attribute_loss",
    "final_attribute_accuracy",
    "steps_to_50pct_accuracy",
)
CURVE_COLUMNS = ("reference_step", "start_step", "step", "attribute_loss", "attribute_accuracy")


def default_out_root(reference: Run) -> Path:
    """`<reference_run>/../<reference_name>-patch-grid`."""
    return reference.path.parent / f"{reference.name}-patch-grid"


def default_reference_steps(reference: Run, fractions=(0, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1)) -> list[int]:
    """Checkpoint steps nearest to these fractions of the reference run (the untrained model, early
    plateau, ..., the final model): a default grid when none is given."""
    last = reference.checkpoint_steps[-1]
    return sorted({reference.nearest_step(round(f * last)) for f in fractions})


def twin_config(
    reference_path: str | Path,
    reference_config: RunConfig,
    reference_step: int,
    start_step: int = 0,
    config: RunConfig | None = None,
) -> RunConfig:
    """The study's twin model (docs/method.md §4.3): the reference run's config (or `config`, derived from it with
    fields changed) with the patch spec; a seed other than the reference's is recorded as chosen on purpose.
    The one place a patched run's config is built (CLI `--patch-from`, grids, sweeps with a [patch] base)."""
    base = (reference_config if config is None else config).replace(patch=None)
    spec = PatchConfig(
        reference_run=str(Path(reference_path).absolute()),
        reference_step=reference_step,
        start_step=start_step,
        allow_other_seed=base.seed != reference_config.seed,
    )
    return base.replace(patch=spec)


def grid_config(
    reference: Run, reference_step: int, start_step: int, config_overrides: dict[str, Any] | None = None
) -> RunConfig:
    """The config of one patched run: the reference's config (+ overrides) with the patch spec."""
    overrides = dict(config_overrides or {})
    if "patch" in overrides:
        raise ValueError("config_overrides must not contain 'patch': the grid sets it per run")
    base = reference.config.replace(**overrides) if overrides else None
    return twin_config(reference.path, reference.config, reference_step, start_step, base)


def sweep_config(table: Mapping[str, Any], values: Mapping[str, Any]) -> RunConfig:
    """One point of a sweep whose base is a `[patch]` table (`reference_run`): the twin at the point's
    patch.reference_step / patch.start_step (default 0), the point's other values assigned, validated."""
    reference = load_run(RunDir.require(under_root(table["reference_run"]), "patch.reference_run").path)
    steps = {k: values.get(f"patch.{k}", 0) for k in ("reference_step", "start_step")}
    cfg = assign(
        twin_config(reference.path, reference.config, **steps),
        {k: v for k, v in values.items() if k not in ("patch.reference_step", "patch.start_step")},
    )
    validate_patch(cfg)
    return cfg


@dataclass(frozen=True)
class GridJob:
    """One patched run of a grid: its reference step, start step, config and run directory."""

    reference_step: int
    start_step: int
    config: RunConfig
    out: Path


def plan_grid(
    reference_run: str | Path,
    reference_steps: Iterable[int],
    start_steps: Iterable[int] = (0,),
    out_root: str | Path | None = None,
    config_overrides: dict[str, Any] | None = None,
) -> tuple[Run, Path, list[GridJob]]:
    """The reference run, the grid folder and every patched run of the grid, all validated
    (reference checkpoint, architecture, tokenizer, seed, ranges, existing runs) before any training.
    `workbench.experiment.patch_grid` trains them."""
    reference = load_run(reference_run)
    ref_steps, starts = _steps("reference_steps", reference_steps), _steps("start_steps", start_steps)
    root = Path(out_root) if out_root is not None else default_out_root(reference)
    jobs = []
    for r in ref_steps:
        for s in starts:
            cfg = grid_config(reference, r, s, config_overrides)
            validate_patch(cfg)
            out = root / run_name(cfg)
            RunDir(out).check_resumable(cfg)
            jobs.append(GridJob(r, s, cfg, out))
    return reference, root, jobs


def grid_summary(reference: Run, root: Path, jobs: list[GridJob]) -> pd.DataFrame:
    """The grid's summary table (saved as <root>/grid.csv): the unpatched reference, then each job.

    Columns: reference_step, start_step (nullable ints; missing on the baseline row), run
    (directory), final_attribute_loss, final_attribute_accuracy, steps_to_50pct_accuracy (first
    evaluation step with attribute accuracy >= 0.5, NaN if never).
    """
    rows = [summary_row(None, None, reference)]
    rows += [summary_row(j.reference_step, j.start_step, load_run(j.out)) for j in jobs]
    df = pd.DataFrame(rows, columns=list(GRID_COLUMNS))
    df = df.astype({"reference_step": "Int64", "start_step": "Int64"})
    write_grid_csv(df, root / "grid.csv")
    return df


def summary_row(reference_step: int | None, start_step: int | None, run: Run) -> dict[str, Any]:
    m = run.metrics.sort_values("step")
    if "attribute_accuracy" not in m or m.empty:
        raise ValueError(f"run {run.path} has no evaluation yet")
    reached = m.loc[m["attribute_accuracy"] >= 0.5, "step"]
    return {
        "reference_step": reference_step,
        "start_step": start_step,
        "run": str(run.path),
        "final_attribute_loss": float(m["attribute_loss"].iloc[-1]),
        "final_attribute_accuracy": float(m["attribute_accuracy"].iloc[-1]),
        "steps_to_50pct_accuracy": float(reached.iloc[0]) if len(reached) else math.nan,
    }


def write_grid_csv(df: pd.DataFrame, path: Path) -> None:
    """Atomic CSV write; the baseline's missing steps are written as 'none'."""
    out = df.copy()
    for col in ("reference_step", "start_step"):
        out[col] = out[col].astype(object).where(out[col].notna(), "none")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(path, out)


def read_grid_csv(path: str | Path) -> pd.DataFrame:
    """The summary table `patch_grid` wrote (grid.csv), with the baseline's 'none' steps missing again."""
    df = pd.read_csv(path, na_values=["none"])
    return df.astype({"reference_step": "Int64", "start_step": "Int64"})


def grid_curves(grid_df: pd.DataFrame) -> pd.DataFrame:
    """Long table of every grid run's learning curve: reference_step, start_step, step, attribute loss/accuracy."""
    parts = []
    for row in grid_df.itertuples(index=False):
        m = load_run(row.run).metrics
        part = m[["step", "attribute_loss", "attribute_accuracy"]].copy()
        part.insert(0, "start_step", row.start_step)
        part.insert(0, "reference_step", row.reference_step)
        parts.append(part)
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(CURVE_COLUMNS))
    return out.astype({"reference_step": "Int64", "start_step": "Int64"})[list(CURVE_COLUMNS)]


def _steps(name: str, steps: Iterable[int]) -> list[int]:
    steps = [steps] if isinstance(steps, int) else list(steps)
    if not steps:
        raise ValueError(f"{name} is empty: allowed a non-empty list of integers >= 0")
    for s in steps:
        if not isinstance(s, int) or isinstance(s, bool) or s < 0:
            raise ValueError(f"{name} contains {s!r}: allowed integers >= 0")
    return sorted(set(steps))
