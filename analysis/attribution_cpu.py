"""Data attribution of the recall head at cpu-sweep scale, and its causal test by retraining (docs/method.md §6.1).

    python analysis/attribution_cpu.py [--seeds 0 1 2] [--steps 800] [--fit-size 4096] [--arms core|full]

1. The reference runs: the shipped sweep `cpu/attribution` (cpu-sweep, N = 2000, 1,000 steps, a
   checkpoint every 25 steps), trained when absent.
2. Per run: the recall head (`find_recall_head`, last layer) and the attribution of its plateau window
   (the attention measure at the first checkpoint after the plateau end).
3. The retrains, one sweep through the engine (Ray): per run, the arms below, `--steps` steps each
   (the preset's learning rate is constant, so a shorter run has the same dynamics up to its end).
4. Per run: plateau end (95% interval), the head's formation step (its measure reaching halfway from
   initialisation to the reference's last value), accuracy at the last common step; then each arm
   against random removal of the same size, paired by seed (mean difference, 95% t-interval over seeds).

Prints markdown tables (for analysis/NOTES.md) and writes analysis/figures/attribution_cpu_*.png.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cpu_sweeps import markdown  # analysis/, beside this script

import workbench as wb
from workbench.attribution.formation import effects, retrain_curves, retrain_table
from workbench.attribution.heads import find_recall_head
from workbench.attribution.retrain import retrain_spec
from workbench.run import checkpoints_root
from workbench.viz import plot_head_scores, plot_influence, plot_retrains

FIGURES = Path(__file__).with_name("figures")
ARMS = {
    "core": [{"action": "remove", "selection": s, "percent": k} for k in (10.0, 30.0) for s in ("top", "random")],
    "full": (
        [{"action": "remove", "selection": s, "percent": 10.0} for s in ("top", "random", "matched", "bottom")]
        + [{"action": "remove", "selection": s, "percent": 30.0} for s in ("top", "random")]
        + [{"action": "duplicate", "selection": "top", "percent": 10.0}]
    ),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--fit-size", type=int, default=4096)
    p.add_argument(
        "--arms",
        choices=sorted(ARMS),
        default="core",
        help="core: top and random removal of 10%% and 30%%; full: also matched, bottom, duplication",
    )
    args = p.parse_args()
    FIGURES.mkdir(exist_ok=True)

    wb.sweep("cpu/attribution")
    root = checkpoints_root() / "sweeps" / "cpu-attribution"
    attributions = []
    print("| seed | head | attribute->name | ablation effect | plateau window | sequences | attribution (s) |")
    print("|---|---|---|---|---|---|---|")
    for seed in args.seeds:
        run = wb.load_run(root / f"seed{seed}")
        found = find_recall_head(run)
        a = wb.attribute(run, layer=found.layer, head=found.head, fit_size=args.fit_size)
        attributions.append(a)
        row = found.scores.set_index(["layer", "head"]).loc[(found.layer, found.head)]
        print(
            f"| {seed} | L{found.layer}H{found.head} | {row['attribute_to_name']:.3f} | "
            f"{row['ablation_effect']:.3f} | [{a.config.start}, {a.config.end}) | {a.meta['n_sequences']} | "
            f"{a.meta['seconds']['total']:.0f} |"
        )
        if seed == args.seeds[0]:
            plot_head_scores(found.scores, (found.layer, found.head)).savefig(FIGURES / "attribution_cpu_heads.png")
            plot_influence(a.sequences, a.aggregate("step")).savefig(FIGURES / "attribution_cpu_influence.png")
            print("\nby attribute:\n" + markdown(a.aggregate("attribute")))
            print("\ntop individuals:\n" + markdown(a.aggregate("individual").head(8)))

    t0 = time.perf_counter()
    status = wb.sweep(
        retrain_spec(
            attributions,
            arms=ARMS[args.arms],
            name="cpu-attribution-retrains",
            steps=args.steps,
            n_checkpoints=args.steps // 25,
        )
    )
    print(f"\nretrains: {len(status)} runs in {time.perf_counter() - t0:.0f} s")
    runs = list(status[status["status"] == "finished"]["run"])
    table = retrain_table(attributions, runs)
    cols = [
        "seed",
        "head",
        "action",
        "selection",
        "percent",
        "plateau_end",
        "plateau_end_lo",
        "plateau_end_hi",
        "formation_step",
        "accuracy",
    ]
    print("\n" + markdown(table[cols]))
    for metric in ("plateau_end", "formation_step", "accuracy"):
        print(f"\n{metric} vs random removal of the same size (paired by seed):\n" + markdown(effects(table, metric)))
    plot_retrains(retrain_curves(attributions, runs), table).savefig(FIGURES / "attribution_cpu_retrains.png")


if __name__ == "__main__":
    main()
