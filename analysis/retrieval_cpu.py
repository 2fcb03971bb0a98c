"""Test-time retrieval across training at cpu-sweep scale, and the compute multiplier (docs/method.md §6.2).

    python analysis/retrieval_cpu.py [--k 3] [--q 0.5 0.0] [--seed 0] [--steps 1500] [--m 2] [--votes 2]

1. Packed runs: the cpu-packed preset (cpu-sweep's N = 2000, 3 attributes, 2 layers, with k biographies per
   training sequence and probability q that one of them repeats the first's individual; 16 checkpoints), trained
   when absent, resumed when unfinished (checkpoints/cpu-packed-k{k}-q{q}-seed{seed}).
2. Per run, at every checkpoint: accuracy on seen individuals without retrieval, with the top-m BM25
   documents, with m oracle documents, and by self-consistency over `votes` one-document contexts; the
   held-out individuals' confidence and copy rate with and without retrieval; the multiplier of each mode
   against the run's own baseline curve.
3. The reading tests (`workbench.retrieval.reading`): held-out individuals (never trained on) with their own
   biography, someone else's, or both before the evaluation biography. A model that reads facts from its
   context gets them right; one that only recalls from its weights cannot.

Prints markdown tables (for analysis/NOTES.md) and writes analysis/figures/retrieval_cpu_*.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cpu_sweeps import markdown  # analysis/, beside this script

import workbench as wb
from workbench.config import preset
from workbench.experiment import train_or_resume
from workbench.retrieval import RetrievalConfig, retrieve
from workbench.retrieval.reading import reading_test
from workbench.run import checkpoints_root

FIGURES = Path(__file__).with_name("figures")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--q", type=float, nargs="+", default=[0.5])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--m", type=int, default=2)
    p.add_argument("--votes", type=int, default=2)
    p.add_argument("--train-only", action="store_true")
    args = p.parse_args()
    FIGURES.mkdir(exist_ok=True)
    for q in args.q:
        path = checkpoints_root() / f"cpu-packed-k{args.k}-q{q}-seed{args.seed}"
        config = preset("cpu-packed", data={"packing": {"k": args.k, "q_same": q}}, train={"steps": args.steps})
        train_or_resume(config.replace(seed=args.seed), path)
        if args.train_only:
            continue
        run = wb.load_run(path)
        study = retrieve(run, RetrievalConfig(m=args.m, votes=args.votes))
        print(
            f"\n### k={args.k}, q_same={q}, seed {args.seed}: {run.phases().describe()}; "
            f"datastore {study.meta['datastore']}; {study.meta['seconds']}\n"
        )
        s = study.summary
        wide = s[s["group"] == "seen"].pivot(index="step", columns="mode", values="accuracy")
        print("Seen individuals, attribute accuracy by mode:\n")
        print(markdown(wide.reset_index().round(3)))
        mult = study.multipliers[study.multipliers["mode"] != "none"].copy()
        mult["multiplier"] = mult.apply(
            lambda r: (
                f"{r.multiplier:.2f} [{r.multiplier_lo:.2f}, {r.multiplier_hi:.2f}]"
                f"{' (' + r.status + ')' if r.status != 'within' else ''}"
            ),
            axis=1,
        )
        print("\nMultiplier (equivalent step / step, 95% bootstrap interval):\n")
        print(markdown(mult.pivot(index="step", columns="mode", values="multiplier").reset_index()))
        held = s[s["group"] == "heldout"].pivot(index="step", columns="mode", values=["top_probability", "copied"])
        held.columns = [f"{a}/{b}" for a, b in held.columns]
        print("\nHeld-out individuals: value confidence and copy rate of the top document's value:\n")
        print(markdown(held.dropna(axis=1, how="all").reset_index().round(3)))
        print("\nReading tests, held-out individuals (workbench.retrieval.reading):\n")
        table = reading_test(run, [s for s in run.checkpoint_steps if s % 300 == 0 and s > 0], size=128, progress=False)
        print(markdown(table.pivot(index="step", columns="condition", values="accuracy").reset_index().round(3)))
        from workbench.viz.retrieval import plot_retrieval

        fig = plot_retrieval(study, run)
        fig.savefig(FIGURES / f"retrieval_cpu_k{args.k}_q{q}.png", dpi=110, bbox_inches="tight")


if __name__ == "__main__":
    main()
