"""A sweep's results, read from its run directories, and the study's dependences (docs/method.md §4.2, §4.5, §4.7).

`sweep_table` has one row per trial: the values it set, its status, its final attribute loss and
accuracy, and its phases (`workbench.phases`: plateau start / end with 95% intervals, censored when
the loss never escaped). On it:

- `power_law_fit`: plateau end ~ a * N^b by least squares in log-log; the interval for b bootstraps
  over seeds (per N, seeds resampled with replacement) and, inside each run, over its plateau-end
  interval (the evaluation spacing and the per-sequence bootstrap), so both uncertainties are in it
  (an interval open above, when some replicates never escape within the run, is capped at its length);
- `power_law_fit(..., estimator=)` fits any estimator of `workbench.escape` (onset, accuracy10; attention50 when the
  table was read with `attention=True`); `exposures_at_escape`
  gives the exposures per individual at escape per N;
- `over_seeds`: per setting (all values but the seed), the mean plateau end with that same interval;
- `finetune_drops`: initial and final drop of seen-individual accuracy per fine-tuning run; `finetune_summary`: their
  means over bases (seeds) per (n_new, replay weight), with intervals and the paired change from no replay;
  `replay_verdict`: whether replay reduces the final drop but not the initial one, per n_new.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.escape import CHECKPOINT_ESTIMATORS, ESTIMATORS, attention_half, escape_estimates
from workbench.intervals import mean_interval
from workbench.phases import PlateauRule, detect_phases
from workbench.run import Run
from workbench.sweeps.engine import read_plan

STUDY_POWER_LAW = (0.43, 0.81)  # plateau length ~ 0.43 * N^0.81 steps (docs/method.md §4.2)
INITIAL_FRACTION = 0.25  # the initial drop of a fine-tuning run: its worst seen accuracy in the first quarter


def sweep_table(
    root: str | Path, rule: PlateauRule | None = None, n_boot: int = 200, attention: bool = False
) -> pd.DataFrame:
    """One row per trial of the sweep at `root` (see the module docstring); unfinished trials have
    their status and NaN results. `attention`: also the attention50 escape (`workbench.escape.attention_half`),
    which loads every checkpoint of every run (cached under each run's analysis/)."""
    plan = read_plan(root)
    rows = []
    for entry in plan["trials"]:
        row = {"trial": entry["name"], **entry["values"], "run": entry["run"], "status": "pending"}
        if (Path(entry["run"]) / "manifest.json").is_file():
            run = Run(entry["run"])
            row["status"] = run.status
            if row["status"] == "finished":
                row |= _results(run, rule, n_boot, attention)
        rows.append(row)
    return pd.DataFrame(rows)


def _results(run: Run, rule: PlateauRule | None, n_boot: int, attention: bool = False) -> dict:
    m = run.metrics.sort_values("step")
    last = m.iloc[-1]
    out = {
        "steps": int(last["step"]),
        "baseline": float(last["no_knowledge_baseline"]),
        "final_attribute_loss": float(last["attribute_loss"]),
        "final_attribute_accuracy": float(last["attribute_accuracy"]),
    }
    if run.config.finetune is not None:  # fine-tuning: no plateau; the drops of seen accuracy
        return out | drops(m)
    scores, baseline = run.dir.read_scores(), run.config.data.no_knowledge_baseline  # read once, for both
    ph = detect_phases(scores["step"], scores["loss"], baseline, rule, n_boot)  # what run.phases gives
    lo, hi = ph.plateau_end_ci if ph.exists else (math.nan, math.nan)  # no interval around "no plateau"
    out |= {
        "plateau_start": ph.plateau_start,
        "plateau_end": ph.plateau_end,
        "plateau_end_lo": lo,
        "plateau_end_hi": hi,
        "censored": bool(ph.censored),
        "has_plateau": bool(ph.exists),
    }
    others = tuple(e for e in ESTIMATORS if e != "rule")  # the rule's are the plateau_end columns
    est = escape_estimates(scores["step"], scores["loss"], scores["correct"], baseline, rule, n_boot, estimators=others)
    for name in others:
        e = est[name]
        out |= {
            f"escape_{name}": e.step,
            f"escape_{name}_lo": e.lo,
            f"escape_{name}_hi": e.hi,
            f"escape_{name}_censored": e.censored,
        }
    if attention:
        from workbench.attention import attention_over_training

        df = attention_over_training(run, progress=False)
        df = df[(df["layer"] == df["layer"].max()) & (df["metric"] == "attribute->name")]
        curve = df.groupby("step")["value"].mean()
        e = attention_half(curve.index.to_numpy(), curve.to_numpy())
        out |= {"escape_attention50": e.step, "escape_attention50_lo": e.lo, "escape_attention50_hi": e.hi}
        out["escape_attention50_censored"] = e.censored
    # exposures per individual: biographies of an individual seen per step, on average
    out["exposures_per_step"] = run.config.train.batch_size * run.config.data.packing.k / run.config.data.n_individuals
    return out


def drops(metrics: pd.DataFrame) -> dict:
    """Seen-individual accuracy of a fine-tuning run: at step 0 (the base checkpoint), its initial drop
    (step 0 minus the minimum over the first INITIAL_FRACTION of the run), its final drop (step 0 minus
    the last evaluation), and the new individuals' final accuracy."""
    m = metrics.sort_values("step")
    acc, steps = m["attribute_accuracy"].to_numpy(), m["step"].to_numpy()
    early = steps <= steps[0] + INITIAL_FRACTION * (steps[-1] - steps[0])
    return {
        "base_accuracy": float(acc[0]),
        "initial_drop": float(acc[0] - acc[early].min()),
        "final_drop": float(acc[0] - acc[-1]),
        "new_final_accuracy": float(m["new_attribute_accuracy"].iloc[-1])
        if "new_attribute_accuracy" in m
        else math.nan,
    }


def finetune_drops(table: pd.DataFrame) -> pd.DataFrame:
    """The fine-tuning columns of a fine-tuning sweep's table, one row per run."""
    keys = [c for c in table.columns if c.startswith("finetune.")]
    cols = keys + ["base_accuracy", "initial_drop", "final_drop", "new_final_accuracy"]
    return table[table["status"] == "finished"][cols].sort_values(keys).reset_index(drop=True)


def finetune_summary(drops_table: pd.DataFrame, pair: str = "finetune.base_run") -> pd.DataFrame:
    """Per (n_new, replay weight) of `finetune_drops` rows over bases (seeds): the mean initial and final drops with
    95% t-intervals, and each drop's change from no replay (weight 0) paired by base (`pair`), with its interval:
    the table that says whether replay reduces the final drop but not the initial one."""
    keys = ["finetune.n_new", "finetune.replay_weight"]
    none = drops_table[drops_table["finetune.replay_weight"] == 0].set_index(["finetune.n_new", pair])
    rows = []
    for (n_new, weight), g in drops_table.groupby(keys):
        row = {"n_new": n_new, "replay_weight": weight, "seeds": len(g)}
        for drop in ("initial_drop", "final_drop"):
            mean, lo, hi, _ = mean_interval(g[drop])
            base = [none[drop].get((n_new, b), math.nan) for b in g[pair]]
            d_mean, d_lo, d_hi, _ = mean_interval(g[drop].to_numpy() - np.asarray(base, dtype=float))
            row |= {drop: mean, f"{drop}_lo": lo, f"{drop}_hi": hi}
            row |= {f"{drop}_vs_none": d_mean, f"{drop}_vs_none_lo": d_lo, f"{drop}_vs_none_hi": d_hi}
        row["new_final_accuracy"] = float(g["new_final_accuracy"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def replay_verdict(summary: pd.DataFrame) -> pd.DataFrame:
    """Per n_new of `finetune_summary`, at its largest replay weight against none: does replay reduce the final
    drop (its change's interval below 0) and leave the initial one (its change's interval contains 0)? `holds`:
    both, the study's "replay reduces the final drop but not the initial one"."""
    rows = []
    for n_new, g in summary.groupby("n_new"):
        top = g.loc[g["replay_weight"].idxmax()]
        final = bool(top["final_drop_vs_none_hi"] < 0)
        initial = bool(top["initial_drop_vs_none_lo"] <= 0 <= top["initial_drop_vs_none_hi"])
        changes = {c: top[c] for c in top.index if c.endswith(("_vs_none", "_vs_none_lo", "_vs_none_hi"))}
        rows.append(
            {
                "n_new": n_new,
                "replay_weight": top["replay_weight"],
                **changes,
                "final_reduced": final,
                "initial_unchanged": initial,
                "holds": final and initial,
            }
        )
    return pd.DataFrame(rows)


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
        return (
            f"plateau end = {self.a:.3g} * N^{self.b:.2f} (b 95% CI {self.b_ci[0]:.2f}..{self.b_ci[1]:.2f}, "
            f"{self.n} runs)"
        )


def escaped(table: pd.DataFrame) -> pd.Series:
    """Rows of finished runs whose plateau ended within the run (the ones a plateau end is known for)."""
    return (
        (table["status"] == "finished")
        & table["has_plateau"].fillna(False).astype(bool)
        & ~table["censored"].fillna(True).astype(bool)
    )


def escape_column(estimator: str) -> str:
    """The sweep table's column of an estimator's escape step (`workbench.escape`): the rule's is plateau_end."""
    if estimator not in ESTIMATORS + CHECKPOINT_ESTIMATORS:
        allowed = " | ".join(ESTIMATORS + CHECKPOINT_ESTIMATORS)
        raise ValueError(f"estimator={estimator!r} is out of range: allowed {allowed}")
    return "plateau_end" if estimator == "rule" else f"escape_{estimator}"


def _usable(table: pd.DataFrame, estimator: str = "rule") -> tuple[pd.DataFrame, list[str]]:
    col, excluded = escape_column(estimator), []
    ok = escaped(table) & (np.isfinite(table[col].astype(float)) if col in table else False)
    for row, good in zip(table.itertuples(index=False), ok):
        if not good:
            why = (
                "unfinished"
                if row.status != "finished"
                else "no plateau"
                if not row.has_plateau
                else "censored (never escaped)"
                if row.censored
                else f"{estimator} not reached within the run"
            )
            excluded.append(f"{row.trial}: {why}")
    return table[ok], excluded


def plateau_interval(runs: pd.DataFrame, estimator: str = "rule") -> tuple[np.ndarray, np.ndarray]:
    """Each run's escape interval under `estimator`; one open above (some bootstrap replicates never escape within
    the run) is capped at the run's length for sampling, so the interval is, if anything, too narrow there."""
    col = escape_column(estimator)
    lo, hi = runs[f"{col}_lo"].to_numpy(float), runs[f"{col}_hi"].to_numpy(float)
    return lo, np.where(np.isfinite(hi), hi, np.maximum(runs["steps"].to_numpy(float), lo))


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    b, log_a = np.polyfit(np.log(x), np.log(y), 1)
    return float(math.exp(log_a)), float(b)


def power_law_fit(
    table: pd.DataFrame, x: str = "data.n_individuals", n_boot: int = 2000, seed: int = 0, estimator: str = "rule"
) -> PowerLaw:
    """Fit escape step = a * x^b under `estimator` (`workbench.escape`; the rule's plateau end by default; see the
    module docstring); ValueError when fewer than 2 values of x have a usable run."""
    ok, excluded = _usable(table, estimator)
    if ok[x].nunique() < 2:
        raise ValueError(
            f"power_law_fit: {ok[x].nunique()} value(s) of {x} with an escaped plateau; allowed >= 2 "
            f"(excluded: {'; '.join(excluded) or 'none'})"
        )
    a, b = _fit(ok[x].to_numpy(float), ok[escape_column(estimator)].to_numpy(float))
    rng = np.random.default_rng(seed)
    groups = [g for _, g in ok.groupby(x)]
    bs = []
    for _ in range(n_boot):
        xs, ys = [], []
        for g in groups:  # resample seeds per x, then a plateau end inside each run's interval
            pick = g.iloc[rng.integers(0, len(g), len(g))]
            xs.append(pick[x].to_numpy(float))
            ys.append(rng.uniform(*plateau_interval(pick, estimator)))
        bs.append(_fit(np.concatenate(xs), np.maximum(np.concatenate(ys), 1.0))[1])
    lo, hi = np.quantile(bs, [0.025, 0.975])
    return PowerLaw(a, b, (float(lo), float(hi)), len(ok), tuple(excluded))


def over_seeds(table: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per setting (every value column but `seed`): runs, plateaus found, censored, mean plateau end with a
    95% interval over seeds and within-run intervals, mean final attribute loss, and mean final attribute accuracy
    with its 95% t-interval over seeds."""
    keys = [c for c in table.columns if "." in c or c == "case"]
    keys = [c for c in keys if c != "seed" and table[c].nunique(dropna=False) > 1] or keys[:1]
    rng = np.random.default_rng(seed)
    rows = []
    for values, g in table[table["status"] == "finished"].groupby(keys, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        ok = g[escaped(g)]
        row = dict(zip(keys, values)) | {
            "runs": len(g),
            "with_plateau": int(g["has_plateau"].fillna(False).sum()),
            "censored": int(g["censored"].fillna(False).sum()),
        }
        if len(ok):
            lo, hi = plateau_interval(ok)
            boot = [rng.uniform(lo, hi)[rng.integers(0, len(ok), len(ok))].mean() for _ in range(n_boot)]
            row |= {
                "plateau_end": float(ok["plateau_end"].mean()),
                "plateau_end_lo": float(np.quantile(boot, 0.025)),
                "plateau_end_hi": float(np.quantile(boot, 0.975)),
            }
        accuracy, acc_lo, acc_hi, _ = mean_interval(g["final_attribute_accuracy"])
        row |= {
            "final_attribute_loss": float(g["final_attribute_loss"].mean()),
            "final_attribute_accuracy": accuracy,
            "final_attribute_accuracy_lo": acc_lo,
            "final_attribute_accuracy_hi": acc_hi,
        }
        rows.append(row)
    return pd.DataFrame(rows)


def exposures_at_escape(table: pd.DataFrame, x: str = "data.n_individuals") -> pd.DataFrame:
    """Per value of `x` and estimator: the mean escape step over runs and the exposures per individual it took
    (escape step x biographies per step / individuals). The study's law (escape ~ N^0.81) implies exposures
    falling as N^-0.19; rising exposures mean the training regime, not the population, sets the escape."""
    rows = []
    for estimator in ESTIMATORS + CHECKPOINT_ESTIMATORS:
        col = escape_column(estimator)
        if col not in table:  # attention50 only when the table was read with attention=True
            continue
        ok, _ = _usable(table, estimator)
        for value, g in ok.groupby(x):
            rows.append(
                {
                    x: value,
                    "estimator": estimator,
                    "runs": len(g),
                    "escape_step": float(g[col].mean()),
                    "exposures": float((g[col] * g["exposures_per_step"]).mean()),
                }
            )
    return pd.DataFrame(rows, columns=[x, "estimator", "runs", "escape_step", "exposures"])
