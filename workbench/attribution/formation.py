"""The recall head's formation over training, and the effect of a retrain on it.

`measure_over_training` computes a head's measure (`workbench.attribution.measures`) at a run's checkpoints,
on the attribution's fixed measure set (seen individuals on evaluation templates), cached like every
analysis over checkpoints. A head *forms* when its measure first reaches `level`, by default halfway
from its value at initialisation to its last value in the reference run (linear interpolation between
checkpoints; NaN when it never does): one level for a reference run and all its retrains, so their
formation steps compare. The halfway crossing is one noisy checkpoint; `mean_formation_step` uses the whole curve:
the rise from the reference's first value to its last, read as a distribution over steps, has this mean (the
area above the normalised curve), so a curve shifted by d steps has it shifted by exactly d. Its noise grows with the
curve's length, not its slope: steadier than the crossing on a slow rise (the planted worlds'), not on a sharp one.

`retrain_table` gathers, per retrain of a sweep: the plateau end with its 95% interval (`workbench.phases`), the
attribute accuracy at the last step all runs reached and the formation step; `effects` compares each selection with
random removal of the same size, paired by seed, with a t-interval over seeds.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

from workbench.attribution.measures import MEASURE_SEED_OFFSET, MEASURES
from workbench.attribution.window import Attribution
from workbench.escape import first_crossing
from workbench.intervals import mean_interval
from workbench.over_checkpoints import over_checkpoints
from workbench.run import Run, load_run


def measure_over_training(
    run: Run,
    layer: int,
    head: int,
    measure: str = "attention",
    size: int = 256,
    steps: list[int] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """step, measure: the head's measure (mean over the measure set) at checkpoints of `run`."""
    import torch

    from workbench.attribution.heads import check_head
    from workbench.attribution.shim import HeadView

    check_head(run.config.model, layer, head)
    if measure not in MEASURES:
        raise ValueError(f"measure={measure!r} is unknown: allowed {' | '.join(MEASURES)}")
    batch = functools.cache(lambda: run.data.eval_batch("seen", size, seed_offset=MEASURE_SEED_OFFSET))
    fn = MEASURES[measure]()

    def compute(step, models):
        with torch.no_grad():
            value = fn(HeadView(models(step), layer, head), batch()).mean().item()
        return pd.DataFrame({"measure": [value]})

    return over_checkpoints(run, f"measure-L{layer}H{head}-{measure}", compute, steps, {"size": size}, progress)


def formation_level(curve: pd.DataFrame) -> float:
    """Halfway from the measure at the first checkpoint to the last one."""
    return float(curve["measure"].iloc[0] + 0.5 * (curve["measure"].iloc[-1] - curve["measure"].iloc[0]))


def formation_step(curve: pd.DataFrame, level: float) -> float:
    """The first step at which the measure reaches `level` (interpolated), NaN if it never does."""
    return first_crossing(curve["step"], curve["measure"], level)


def mean_formation_step(curve: pd.DataFrame, first: float, last: float, until: int) -> float:
    """step_0 + the integral over [step_0, until] of 1 - (measure - first) / (last - first): the mean step of the
    rise from `first` to `last` (a jump at t gives t; a curve still rising at `until` gives a lower bound)."""
    curve = curve[curve["step"] <= until]
    step, value = curve["step"].to_numpy(float), curve["measure"].to_numpy(float)
    if last == first or len(step) < 2:
        return math.nan
    below = 1.0 - (value - first) / (last - first)
    return float(step[0] + np.sum(0.5 * (below[1:] + below[:-1]) * np.diff(step)))


def _runs_with_heads(attributions, runs) -> list[tuple[Run, Attribution]]:
    """(run, its attribution) for each attributed run (the references) and each retrain of one of them."""
    from pathlib import Path

    by_path = {Path(a.path).resolve(): a for a in attributions}
    out = [(load_run(a.run_path), a) for a in attributions]
    for path in runs:
        run = load_run(path)
        edit = run.config.edit
        attribution = by_path.get(Path(edit.attribution).resolve()) if edit is not None else None
        if attribution is None:
            raise ValueError(
                f"run {run.path} is not a retrain of one of the attributions given: allowed runs "
                f"whose edit.attribution is one of {sorted(map(str, by_path))}"
            )
        out.append((run, attribution))
    return out


def retrain_curves(attributions, runs, size: int = 256, progress: bool = False) -> pd.DataFrame:
    """run, step, measure: the attributed head's measure over training, for the references and their retrains."""
    frames = [
        measure_over_training(run, a.config.layer, a.config.head, a.config.measure, size, progress=progress).assign(
            run=str(run.path)
        )
        for run, a in _runs_with_heads(attributions, runs)
    ]
    return pd.concat(frames, ignore_index=True)[["run", "step", "measure"]]


def retrain_table(attributions, runs, size: int = 256, progress: bool = False) -> pd.DataFrame:
    """One row per run, the attributed runs first (selection 'none'), then their retrains: seed, action,
    selection, percent, selection_seed, plateau_end (lo, hi, censored), accuracy (at accuracy_step, the last
    step every run reached), formation_step (the attributed head's measure reaching halfway, the level set by the
    attributed run of that seed), mean_formation_step (the same run's first and last values, up to
    accuracy_step) and measure_at_end: the measure at the first checkpoint at or after the window's end, the
    quantity the influence of the window's sequences predicts."""
    curves = retrain_curves(attributions, runs, size, progress)
    pairs = _runs_with_heads(attributions, runs)
    common = min(int(run.metrics["step"].max()) for run, _ in pairs)  # retrains may be shorter
    levels = {}
    rows = []
    for run, a in pairs:
        curve = curves[curves["run"] == str(run.path)]
        edit, phases = run.config.edit, run.phases()
        if edit is None:
            levels[str(a.path)] = (formation_level(curve), curve["measure"].iloc[0], curve["measure"].iloc[-1])
        level, first, last = levels[str(a.path)]
        rows.append(
            {
                "run": str(run.path),
                "seed": run.config.seed,
                "head": f"L{a.config.layer}H{a.config.head}",
                "action": edit.action if edit else "none",
                "selection": edit.selection if edit else "none",
                "percent": edit.percent if edit else 0.0,
                "selection_seed": edit.selection_seed if edit else 0,
                "plateau_end": phases.plateau_end,
                "plateau_end_lo": phases.plateau_end_ci[0],
                "plateau_end_hi": phases.plateau_end_ci[1],
                "censored": phases.censored,
                "accuracy": float(run.metrics.set_index("step")["attribute_accuracy"].loc[:common].iloc[-1]),
                "accuracy_step": common,
                "formation_step": formation_step(curve, level),
                "mean_formation_step": mean_formation_step(curve, first, last, common),
                "measure_at_end": float(curve[curve["step"] >= a.config.end]["measure"].iloc[0]),
            }
        )
    return pd.DataFrame(rows)


def effects(table: pd.DataFrame, metric: str = "plateau_end", control: str = "random") -> pd.DataFrame:
    """Per (action, selection, percent): the mean over seeds of `metric` minus the control selection's
    (same action, percent and seed), with a 95% t-interval over seeds and the number of seeds."""
    ctrl = table[table["selection"] == control].groupby(["action", "percent", "seed"])[metric].mean()
    rows = []
    for (action, selection, percent), g in table[table["selection"] != "none"].groupby(
        ["action", "selection", "percent"]
    ):
        d = [v - ctrl.get((action, percent, s), math.nan) for s, v in g.groupby("seed")[metric].mean().items()]
        mean, lo, hi, n = mean_interval(d)
        rows.append(
            {
                "action": action,
                "selection": selection,
                "percent": percent,
                "metric": metric,
                f"delta_vs_{control}": mean,
                "lo": lo,
                "hi": hi,
                "n_seeds": n,
            }
        )
    return pd.DataFrame(rows)
