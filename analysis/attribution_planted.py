"""The planted-signal positive control of data attribution (issue 26; docs/method.md §6.1).

    python analysis/attribution_planted.py [--spec cpu/attribution-planted] [--seeds 0 1 2] [--steps 2000]
        [--estimators exact ekfac] [--selections planted top random matched] [--attribute-only]
        [--window plateau|formation] [--rank-by checkpoint|trajectory] [--percent S]

A world where a known subset drives the recall head's formation, a checkpoint every 25 steps (seeds 0-2 by default):
`cpu/attribution-planted` (cpu-sweep, N = 4,000, 200 celebrities sampled 10x more often: 34% of sequences; a
frequency plant) or `cpu/attribution-planted-rule` (400 of 4,000 individuals whose values follow from one of 10
reserved first names: 10% of sequences, each rewarding reading the name).

1. Per run: the recall head (`find_recall_head`) and the attribution of a window, exact influence at the
   checkpoint after the window and along the trajectory (and EK-FAC with `--estimators ... ekfac`). The window is
   the plateau, or with `--window formation` the head's formation period: [plateau start, the reference's
   formation step + 100), its end rounded up to a checkpoint.
2. Separation: AUROC of influence for the planted individuals' sequences against the others, and the precision of
   the top s% (s = the planted share of the window) against the base rate (targets: AUROC >= 0.8, lift >= 2).
3. Retrains, s% of the window removed: planted (every planted individual's sequence: the oracle),
   top (by exact influence at one checkpoint, or along the trajectory with `--rank-by trajectory`), random,
   matched (random with the top set's count per individual); then the head's formation (the halfway step, and
   the mean formation step, `workbench.attribution.formation`), the measure at the window's end (what influence
   predicts) and the plateau end, each arm minus random removal, paired by seed with a 95% t-interval. The plant is
   strong enough when oracle - random >= ~300 steps; the attribution passes when top - random excludes 0 and is at
   least half the oracle's.

Trials run one after another in one process (no Ray), resuming. Prints markdown for analysis/NOTES.md and each
part's CPU cost; figures in analysis/figures/attribution_planted_*.png.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import pandas as pd
from cpu_sweeps import markdown, train_trials  # analysis/, beside this script

import workbench as wb
from workbench.attribution.formation import (
    effects,
    formation_level,
    formation_step,
    measure_over_training,
    retrain_curves,
    retrain_table,
)
from workbench.attribution.heads import find_recall_head
from workbench.attribution.influence import compare, separation
from workbench.attribution.retrain import planted_individuals, retrain_spec
from workbench.naming import checkpoints_root
from workbench.viz import plot_retrains

FIGURES = Path(__file__).with_name("figures")
SCORINGS = {"exact": ("checkpoint", "trajectory"), "ekfac": ("checkpoint",)}


def window(run, layer: int, head: int, kind: str) -> dict:
    """The attribution window's fields: {} for the plateau (attribute's default), else the formation period."""
    if kind == "plateau":
        return {}
    curve = measure_over_training(run, layer, head, progress=False)
    formed = formation_step(curve, formation_level(curve))
    if math.isnan(formed):
        raise ValueError(f"run {run.path}: head L{layer}H{head} never forms: allowed --window plateau only")
    start = int(run.phases().plateau_start)
    target = min(max(formed + 100, start + 1), run.checkpoint_steps[-1])
    return {"start": start, "end": next(s for s in run.checkpoint_steps if s >= target)}


def attributions(spec: str, seeds, estimators, kind: str, rank_by: str) -> tuple[dict, pd.DataFrame]:
    """Per seed the exact attribution the retrains rank by (`rank_by` scoring); a row per (seed, estimator, scoring)
    with the separation of the planted individuals' sequences (per sequence and as a group) and the
    cost."""
    root = checkpoints_root() / "sweeps" / spec.replace("/", "-")
    ranked, rows = {}, []
    for seed in seeds:
        run = wb.load_run(root / f"seed{seed}")
        found = find_recall_head(run, progress=False)
        planted = planted_individuals(run.config)
        fields = window(run, found.layer, found.head, kind)
        scores = {}
        for estimator in estimators:
            for scoring in SCORINGS[estimator]:
                a = wb.attribute(
                    run, layer=found.layer, head=found.head, estimator=estimator, scoring=scoring, **fields
                )
                seqs = a.sequences
                scores[(estimator, scoring)] = seqs["influence"].to_numpy()
                sep = separation(seqs["influence"], seqs["individual"].isin(planted))
                agreement = compare(scores[("exact", "checkpoint")], scores[(estimator, scoring)])["spearman"]
                rows.append(
                    {
                        "seed": seed,
                        "head": f"L{found.layer}H{found.head}",
                        "window": f"[{a.config.start}, {a.config.end})",
                        "estimator": estimator,
                        "scoring": scoring,
                        **sep,
                        "spearman_vs_exact": agreement,
                        "seconds": a.meta["seconds"]["total"],
                    }
                )
                if (estimator, scoring) == ("exact", rank_by):
                    ranked[seed] = a
    return ranked, pd.DataFrame(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spec", default="cpu/attribution-planted", help="the planted world's sweep spec")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--estimators", nargs="+", choices=sorted(SCORINGS), default=["exact"])
    p.add_argument("--selections", nargs="+", default=["planted", "top", "random", "matched"])
    p.add_argument("--attribute-only", action="store_true")
    p.add_argument("--percent", type=float, default=0.0, help="s, the share removed (default: the planted share)")
    p.add_argument("--window", choices=["plateau", "formation"], default="plateau", help="the window attributed")
    p.add_argument("--rank-by", choices=["checkpoint", "trajectory"], default="checkpoint", help="the top arm's order")
    args = p.parse_args()
    if not 0 <= args.percent < 100:
        p.error(f"--percent {args.percent:g}: allowed 0 < S < 100, or 0 for the planted share")
    FIGURES.mkdir(exist_ok=True)

    t0 = time.perf_counter()
    train_trials(args.spec, args.seeds)
    print(f"reference runs ({args.spec}): {time.perf_counter() - t0:.0f} s this call")
    t0 = time.perf_counter()
    estimators = ["exact", *[e for e in args.estimators if e != "exact"]]
    ranked, table = attributions(args.spec, args.seeds, estimators, args.window, args.rank_by)
    print(f"\n### Separation of the planted individuals' sequences ({time.perf_counter() - t0:.0f} s this call)\n")
    print(markdown(table.round(3)))
    mean = table.drop(columns="seed").groupby(["estimator", "scoring"]).mean(numeric_only=True).round(3)
    print("\nmean over seeds:\n" + markdown(mean.reset_index()))
    if args.attribute_only:
        return

    suffix = [x for x in (args.window, f"by-{args.rank_by}") if x not in ("plateau", "by-checkpoint")]
    percent = args.percent or round(100 * float(table[table["estimator"] == "exact"]["base_rate"].mean()), 1)
    arms = [{"action": "remove", "selection": s, "percent": percent} for s in args.selections]
    t0 = time.perf_counter()
    runs = train_trials(
        retrain_spec(
            list(ranked.values()),
            arms=arms,
            name="-".join([args.spec.replace("/", "-"), *suffix, "retrains"]),
            steps=args.steps,
            n_checkpoints=args.steps // 25,
        )
    )
    print(f"\nretrains ({percent}% of each window removed): {len(runs)} runs, {time.perf_counter() - t0:.0f} s")
    retrains = retrain_table(list(ranked.values()), runs)
    cols = ["seed", "head", "selection", "percent", "plateau_end", "plateau_end_lo", "plateau_end_hi"]
    metrics = ("formation_step", "mean_formation_step", "measure_at_end", "plateau_end")
    print("\n" + markdown(retrains[[*cols, *metrics[:3], "accuracy"]].round(3)))
    deltas = {m: effects(retrains, m) for m in metrics}
    for metric, frame in deltas.items():
        print(f"\n{metric}, each arm minus random removal (paired by seed, 95% t-interval):\n" + markdown(frame))
    d = deltas["formation_step"].set_index("selection")
    if {"planted", "top"} <= set(d.index):
        oracle, top = d.loc["planted"], d.loc["top"]
        print(
            f"\nplant strength: oracle - random = {oracle['delta_vs_random']:+.0f} steps (>= ~300 wanted); "
            f"top - random = {top['delta_vs_random']:+.0f} [{top['lo']:+.0f}, {top['hi']:+.0f}] (excludes 0: "
            f"{top['lo'] > 0 or top['hi'] < 0}; >= half the oracle: "
            f"{top['delta_vs_random'] >= 0.5 * oracle['delta_vs_random']})"
        )
    curves = retrain_curves(list(ranked.values()), runs)
    figure = FIGURES / f"{'_'.join([args.spec.split('/')[-1], *suffix]).replace('-', '_')}_retrains.png"
    plot_retrains(curves, retrains).savefig(figure, dpi=110, bbox_inches="tight")


if __name__ == "__main__":
    main()
