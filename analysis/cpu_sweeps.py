"""Tables and figures of the cpu sweeps (plateau vs N, power-law alpha, curricula, fine-tuning drops).

    workbench sweep cpu/scaling && workbench sweep cpu/curricula && workbench sweep cpu/alpha \
        && workbench sweep cpu/finetune        # ~45 min on 2 cores; finished trials are skipped
    python analysis/cpu_sweeps.py [--family cpu] [--scaling scaling-capacity] [--attention] [--figures analysis/figures]

Reads the sweeps from their run directories (under the checkpoints root), prints markdown tables for
analysis/NOTES.md and writes `sweeps_<family>_*.png`. A sweep not run yet is reported and skipped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from workbench.escape import CHECKPOINT_ESTIMATORS, ESTIMATORS
from workbench.experiment import sweep_root
from workbench.intervals import mean_interval
from workbench.sweeps import finetune_drops, over_seeds, power_law_fit, sweep_table
from workbench.sweeps.results import exposures_at_escape
from workbench.viz import plot_curves, plot_finetune_drops, plot_scaling, plot_tradeoff

PHASES = [
    "trial",
    "plateau_start",
    "plateau_end",
    "plateau_end_lo",
    "plateau_end_hi",
    "censored",
    "final_attribute_loss",
    "final_attribute_accuracy",
]


def table(family: str, name: str, attention: bool = False) -> pd.DataFrame | None:
    root = sweep_root(f"{family}/{name}")
    if not (root / "sweep.json").is_file():
        print(f"\n{family}/{name}: not run yet (workbench sweep {family}/{name})")
        return None
    t = sweep_table(root, attention=attention)
    unfinished = t[t["status"] != "finished"]
    if len(unfinished):
        print(f"\n{family}/{name}: {len(unfinished)} trial(s) not finished: {', '.join(unfinished['trial'])}")
    return t


def train_trials(spec, seeds=None) -> list[Path]:
    """Train a sweep's trials (those of `seeds` when given) one after another in this process (no Ray), resuming
    unfinished ones: for analysis scripts whose trials are short or that share a small machine. The same run
    directories as `workbench.sweep`."""
    from tqdm.auto import tqdm

    from workbench.experiment import plan_sweep, train_or_resume

    planned = plan_sweep(spec)
    trials = [t for t in planned.trials if seeds is None or t.config.seed in seeds]
    return [train_or_resume(t.config, t.out, progress=False).path for t in tqdm(trials, desc=planned.spec.name)]


def capacity_gate(family: str, name: str, t: pd.DataFrame, size: int = 1024) -> pd.DataFrame:
    """The capacity gate of a sweep whose budget names `gate_runs`: each gate run's final model scored on `size`
    fresh biographies of its seen individuals (`Run.seen_accuracy`, what the budget decides on), accuracy with a 95%
    t-interval over the sequences, each scored on all its attributes (`mean_interval`), beside its last evaluation."""
    from workbench.run import Run
    from workbench.sweeps.spec import load_spec

    budget = load_spec(f"{family}/{name}").budget
    rows = []
    for trial in budget.gate_runs if budget else ():
        run = Run(sweep_root(f"{family}/{name}") / trial)
        accuracy, lo, hi, _ = mean_interval(run.seen_accuracy(size))
        read = t.loc[t["trial"] == trial, "final_attribute_accuracy"]
        rows.append(
            {
                "N": run.config.data.n_individuals,
                "gate run": trial,
                "steps": run.config.train.steps,
                "last evaluation": float(read.iloc[0]) if len(read) else float("nan"),
                "accuracy": accuracy,
                "lo": lo,
                "hi": hi,
                f"passes ({budget.gate_accuracy})": bool(accuracy >= budget.gate_accuracy),
            }
        )
    return pd.DataFrame(rows)


def orderings(summary: pd.DataFrame, key: str, metric: str = "plateau_end") -> list[str]:
    """The pairs of settings of an `over_seeds` table whose intervals of `metric` (plateau_end or
    final_attribute_accuracy) separate (the only orderings stated), and those that do not."""
    rows = summary.dropna(subset=[metric]).sort_values(metric).to_dict("records")
    out = []
    for i, a in enumerate(rows):
        for b in rows[i + 1 :]:
            sep = a[f"{metric}_hi"] < b[f"{metric}_lo"]
            out.append(
                f"{metric}: {key} {a[key]} ({a[metric]:.3g}) < {b[key]} ({b[metric]:.3g}): "
                + ("intervals separate" if sep else "intervals overlap, no ordering stated")
            )
    return out


def both_orderings(summary: pd.DataFrame, key: str) -> str:
    """The stated orderings of plateau end and of final accuracy."""
    return "\n".join(orderings(summary, key) + orderings(summary, key, "final_attribute_accuracy"))


def markdown(df: pd.DataFrame) -> str:
    """A pipe table (numbers to 3 significant digits)."""
    cell = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    rows = [list(map(str, df.columns)), ["---"] * len(df.columns)] + [
        [cell(v) for v in r] for r in df.itertuples(index=False)
    ]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="cpu", help="the spec family: cpu | gpu | tiny")
    ap.add_argument("--scaling", default="scaling", help="the plateau-vs-N spec: scaling | scaling-capacity")
    ap.add_argument("--attention", action="store_true", help="also the attention50 escape (loads every checkpoint)")
    ap.add_argument("--figures", default=str(Path(__file__).with_name("figures")), help="folder for the PNGs")
    args = ap.parse_args()
    figures = Path(args.figures)
    figures.mkdir(parents=True, exist_ok=True)

    def save(fig, what: str) -> None:
        fig.savefig(figures / f"sweeps_{args.family}_{what}.png", dpi=110)

    if (t := table(args.family, args.scaling, args.attention)) is not None:
        print("\n### plateau vs N\n\n" + markdown(t.reindex(columns=["data.n_individuals", "seed", *PHASES[1:]])))
        if len(gate := capacity_gate(args.family, args.scaling, t)):
            print("\ncapacity gate (final model, 1,024 fresh biographies of seen individuals):\n" + markdown(gate))
        try:
            fit = power_law_fit(t)
            inside = fit.b_ci[0] <= 0.81 <= fit.b_ci[1]
            print(f"\nrule: {fit.describe()}; 0.81 inside: {inside}; left out: {'; '.join(fit.excluded) or 'none'}")
            for n in sorted(t["data.n_individuals"].unique()):  # sensitivity: the fit without one N
                rest = t[t["data.n_individuals"] != n]
                try:
                    print(f"  without N={n}: {power_law_fit(rest).describe()}")
                except ValueError:
                    pass
        except ValueError as e:
            fit = None
            print(f"\nno fit: {e}")
        print("\n" + markdown(over_seeds(t)))
        for estimator in ESTIMATORS[1:] + (CHECKPOINT_ESTIMATORS if args.attention else ()):
            try:  # each estimator's own exponent; 0.81 inside its interval or not
                f = power_law_fit(t, estimator=estimator)
                print(f"{estimator}: {f.describe()}; 0.81 inside: {f.b_ci[0] <= 0.81 <= f.b_ci[1]}")
            except ValueError as e:
                print(f"{estimator}: no fit: {e}")
        print("\nexposures per individual at escape:\n" + markdown(exposures_at_escape(t)))
        save(plot_scaling(t, fit), args.scaling)
    if (t := table(args.family, "alpha")) is not None:
        s = over_seeds(t)
        print(
            "\n### power-law alpha\n\n"
            + markdown(t.reindex(columns=["data.n_individuals", "data.sampler.alpha", *PHASES[1:]]))
        )
        if len(s):
            print("\n" + markdown(s))
            for n, g in s.groupby("data.n_individuals") if "data.n_individuals" in s else [(None, s)]:
                print(f"\nN = {n}:\n" + both_orderings(g, "data.sampler.alpha"))
            save(
                plot_tradeoff(
                    s, x="data.sampler.alpha", hue="data.n_individuals" if "data.n_individuals" in s else None
                ),
                "alpha",
            )
    if (t := table(args.family, "curricula")) is not None:
        print("\n### curricula\n\n" + markdown(t.reindex(columns=PHASES)))
        s = over_seeds(t)
        print("\n" + markdown(s) + "\n\n" + both_orderings(s, "data.sampler.kind"))
        save(plot_curves(t), "curricula")
    if (t := table(args.family, "finetune")) is not None:
        d = finetune_drops(t)
        print("\n### fine-tuning drops\n\n" + markdown(d))
        save(plot_finetune_drops(d), "finetune")


if __name__ == "__main__":
    main()
