"""A sweep's results, read from its run directories, and the study's dependences (docs/method.md §4.2, §4.5, §4.7).

`sweep_table` has one row per trial: the values it set, its status, its final attribute loss and
accuracy, and its phases (`workbench.phases`: plateau start / end with 95% intervals, censored when
the loss never escaped). On it:

- `power_law_fit`: plateau end ~ a * N^b by least squares in log-log; the interval for b bootstraps
  over seeds (per N, seeds resampled with replacement) and, inside each run, over its plateau-end
  interval (the evaluation spacing and the per-sequence bootstrap), so both uncertainties are in it
  (an interval open above, when some replicates never escape within the run, is capped at its length);
- `over_seeds`: per setting (all values but the seed), the mean plateau end with that same interval;
- `finetune_drops`: initial and final drop of seen-individual accuracy per fine-tuning run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.phases import PlateauRule
from workbench.run import Run
from workbench.sweeps.engine import read_plan

STUDY_POWER_LAW = (0.43, 0.81)  # plateau length ~ 0.43 * N^0.81 steps (docs/method.md §4.2)
INITIAL_FRACTION = 0.25  # the initial drop of a fine-tuning run: its worst seen accuracy in the first quarter


def sweep_table(root: str | Path, rule: PlateauRule | None = None, n_boot: int = 200) -> pd.DataFrame:
    """One row per trial of the sweep at `root` (see the module docstring); unfinished trials have
    their status and NaN results."""
    plan = read_plan(root)
    rows = []
    for entry in plan["trials"]:
        row = {"trial": entry["name"], **entry["values"], "run": entry["run"], "status": "pending"}
        if (Path(entry["run"]) / "manifest.json").is_file():
            run = Run(entry["run"])
            row["status"] = run.status
            if row["status"] == "finished":
                row |= _results(run, rule, n_boot)
        rows.append(row)
    return pd.DataFrame(rows)


def _results(run: Run, rule: PlateauRule | None, n_boot: int) -> dict:
    m = run.metrics.sort_values("step")
    last = m.iloc[-1]
    out = {"steps": int(last["step"]), "baseline": float(last["no_knowledge_baseline"]),
           "final_attribute_loss": float(last["attribute_loss"]),
           "final_attribute_accuracy": float(last["attribute_accuracy"])}
    if run.config.finetune is not None:  # fine-tuning: no plateau; the drops of seen accuracy
        return out | drops(m)
    ph = run.phases(rule=rule, n_boot=n_boot)
    lo, hi = ph.plateau_end_ci if ph.exists else (math.nan, math.nan)  # no interval around "no plateau"
    return out | {"plateau_start": ph.plateau_start, "plateau_end": ph.plateau_end,
                  "plateau_end_lo": lo, "plateau_end_hi": hi,
                  "censored": bool(ph.censored), "has_plateau": bool(ph.exists)}


def drops(metrics: pd.DataFrame) -> dict:
    """Seen-individual accuracy of a fine-tuning run: at step 0 (the base checkpoint), its initial drop
    (step 0 minus the minimum over the first INITIAL_FRACTION of the run), its final drop (step 0 minus
    the last evaluation), and the new individuals' final accuracy."""
    m = metrics.sort_values("step")
    acc, steps = m["attribute_accuracy"].to_numpy(), m["step"].to_numpy()
    early = steps <= steps[0] + INITIAL_FRACTION * (steps[-1] - steps[0])
    return {"base_accuracy": float(acc[0]), "initial_drop": float(acc[0] - acc[early].min()),
            "final_drop": float(acc[0] - acc[-1]),
            "new_final_accuracy": float(m["new_attribute_accuracy"].iloc[-1]) if "new_attribute_accuracy" in m
            else math.nan}


def finetune_drops(table: pd.DataFrame) -> pd.DataFrame:
    """The fine-tuning columns of a fine-tuning sweep's table, one row per run."""
    keys = [c for c in table.columns if c.startswith("finetune.")]
    cols = keys + ["base_accuracy", "initial_drop", "final_drop", "new_final_accuracy"]
    return table[table["status"] == "finished"][cols].sort_values(keys).reset_index(drop=True)


@dataclass(frozen=True)
class PowerLaw:
    """plateau end ~ a * x^b over `n` runs (the uncensored ones with a plateau), b with a 95% interval."""

    a: float
    b: float
    b_ci: tuple[float, float]
    n: int
    excluded: tuple[str, ...]  # trials left out, with why: no plateau, censored, unfinished

    def __call__(self, x):
        return self.a * np.asarray(x, dtype=float) ** self.b

    def describe(self) -> str:
        return (f"plateau end = {self.a:.3g} * N^{self.b:.2f} (b 95% CI {self.b_ci[0]:.2f}..{self.b_ci[1]:.2f}, "
                f"{self.n} runs)")


def escaped(table: pd.DataFrame) -> pd.Series:
    """Rows of finished runs whose plateau ended within the run (the ones a plateau end is known for)."""
    return ((table["status"] == "finished") & table["has_plateau"].fillna(False).astype(bool)
            & ~table["censored"].fillna(True).astype(bool))


def _usable(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    excluded = []
    for row in table.itertuples(index=False):
        why = ("unfinished" if row.status != "finished" else "no plateau" if not row.has_plateau
               else "censored (never escaped)" if row.censored else None)
        if why:
            excluded.append(f"{row.trial}: {why}")
    return table[escaped(table)], excluded


def plateau_interval(runs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each run's plateau-end interval; one open above (some bootstrap replicates never escape within the
    run) is capped at the run's length for sampling, so the interval is, if anything, too narrow there."""
    lo, hi = runs["plateau_end_lo"].to_numpy(float), runs["plateau_end_hi"].to_numpy(float)
    return lo, np.where(np.isfinite(hi), hi, np.maximum(runs["steps"].to_numpy(float), lo))


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    b, log_a = np.polyfit(np.log(x), np.log(y), 1)
    return float(math.exp(log_a)), float(b)


def power_law_fit(table: pd.DataFrame, x: str = "data.n_individuals", n_boot: int = 2000, seed: int = 0) -> PowerLaw:
    """Fit plateau end = a * x^b (see the module docstring); ValueError when fewer than 2 values of x
    have a usable run."""
    ok, excluded = _usable(table)
    if ok[x].nunique() < 2:
        raise ValueError(f"power_law_fit: {ok[x].nunique()} value(s) of {x} with an escaped plateau; allowed >= 2 "
                         f"(excluded: {'; '.join(excluded) or 'none'})")
    a, b = _fit(ok[x].to_numpy(float), ok["plateau_end"].to_numpy(float))
    rng = np.random.default_rng(seed)
    groups = [g for _, g in ok.groupby(x)]
    bs = []
    for _ in range(n_boot):
        xs, ys = [], []
        for g in groups:  # resample seeds per x, then a plateau end inside each run's interval
            pick = g.iloc[rng.integers(0, len(g), len(g))]
            xs.append(pick[x].to_numpy(float))
            ys.append(rng.uniform(*plateau_interval(pick)))
        bs.append(_fit(np.concatenate(xs), np.maximum(np.concatenate(ys), 1.0))[1])
    lo, hi = np.quantile(bs, [0.025, 0.975])
    return PowerLaw(a, b, (float(lo), float(hi)), len(ok), tuple(excluded))


def over_seeds(table: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per setting (every value column but `seed`): runs, plateaus found, censored, mean plateau end with a
    95% interval over seeds and within-run intervals, mean final attribute loss and accuracy."""
    keys = [c for c in table.columns if "." in c or c == "case"]
    keys = [c for c in keys if c != "seed" and table[c].nunique(dropna=False) > 1] or keys[:1]
    rng = np.random.default_rng(seed)
    rows = []
    for values, g in table[table["status"] == "finished"].groupby(keys, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        ok = g[escaped(g)]
        row = dict(zip(keys, values)) | {"runs": len(g), "with_plateau": int(g["has_plateau"].fillna(False).sum()),
                                         "censored": int(g["censored"].fillna(False).sum())}
        if len(ok):
            lo, hi = plateau_interval(ok)
            boot = [rng.uniform(lo, hi)[rng.integers(0, len(ok), len(ok))].mean() for _ in range(n_boot)]
            row |= {"plateau_end": float(ok["plateau_end"].mean()),
                    "plateau_end_lo": float(np.quantile(boot, 0.025)), "plateau_end_hi": float(np.quantile(boot, 0.975))}
        row |= {"final_attribute_loss": float(g["final_attribute_loss"].mean()),
                "final_attribute_accuracy": float(g["final_attribute_accuracy"].mean())}
        rows.append(row)
    return pd.DataFrame(rows)
