"""Reading from the context (issue 27): the cpu-reading preset against its control, the reading tests over
training next to memorisation, and the BM25 compute multiplier on a longer baseline (docs/method.md §6.2).

    python analysis/reading_cpu.py [--seed 0] [--size 256] [--train-only]

1. Runs, trained when absent and resumed when unfinished (under the checkpoints root):
   - cpu-reading-seed{seed}: the preset (k=3, context-only individuals in 70% of sequences, 4 layers, 3,000 steps);
   - cpu-reading-control-seed{seed}: the same without context-only individuals (q_ctx 0), 1,600 steps: as many
     seen-individual biographies as the reading run's 3,000 steps (3 per sequence vs 0.3 x 3 + 0.7 x 1 = 1.6);
   - cpu-reading-long-seed{seed}: the reading run's config to 2x its steps (extendable), the multiplier's baseline.
2. Reading tests per checkpoint (held-out individuals: alone, [own], [other], [other, own], [own, other]) and the
   criteria R1 (own - alone >= 0.5), R2 (both orders >= 0.8 x own; other <= alone + 0.02) at the final checkpoint.
3. Memorisation: seen accuracy of the reading run vs the control at equal seen-biography exposure (R4).
4. Retrieval (BM25, generated datastore) at every checkpoint with the longer run as the baseline: the multiplier
   with its interval, and whether its lower bound exceeds 1 (R3).
Prints markdown for analysis/NOTES.md; figures in analysis/figures/reading_cpu_*.png.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from cpu_sweeps import markdown  # analysis/, beside this script

from workbench.config import preset
from workbench.experiment import train_or_resume
from workbench.naming import checkpoints_root
from workbench.retrieval import RetrievalConfig, retrieve
from workbench.retrieval.reading import reading_test

FIGURES = Path(__file__).with_name("figures")
SEEN_PER_SEQUENCE = {"reading": 0.3 * 3 + 0.7 * 1, "control": 3.0}  # seen biographies per packed sequence


def runs(seed: int) -> dict:
    base = preset("cpu-reading", seed=seed)
    control = base.replace(data={"packing": {"q_ctx": 0.0, "n_context": 0}}, train={"steps": 1600})
    # twice the steps; the context-only pool is sized for 4x so the constant-lr run can be extended in place
    # (`workbench train --resume RUN --steps M`) if the retrieval accuracies lie beyond its end
    longer = base.replace(train={"steps": 2 * base.train.steps}, data={"packing": {"n_context": 300_000}})
    root = checkpoints_root()
    return {
        "reading": (base, root / f"cpu-reading-seed{seed}"),
        "control": (control, root / f"cpu-reading-control-seed{seed}"),
        "long": (longer, root / f"cpu-reading-long-seed{seed}"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--train-only", action="store_true")
    args = p.parse_args()
    trained = {}
    for name, (config, path) in runs(args.seed).items():
        t0 = time.perf_counter()
        trained[name] = train_or_resume(config, path)
        print(f"{name}: {trained[name].path} ({time.perf_counter() - t0:.0f} s this call)")
    if args.train_only:
        return
    reading, control = trained["reading"], trained["control"]

    table = reading_test(reading, size=args.size)
    acc = table.pivot(index="step", columns="condition", values="accuracy")[list(table["condition"].unique())]
    print("\n### Reading tests, held-out accuracy per checkpoint\n")
    print(markdown(acc.reset_index().round(3)))
    last = acc.iloc[-1]
    print(
        f"\nR1 own - alone = {last['own'] - last['alone']:.3f} (>= 0.5); R2 other_own / own = "
        f"{last['other_own'] / max(last['own'], 1e-9):.2f}, own_other / own = "
        f"{last['own_other'] / max(last['own'], 1e-9):.2f} (>= 0.8), other - alone = "
        f"{last['other'] - last['alone']:+.3f} (<= 0.02)"
    )

    curves = []
    for name, run in (("reading", reading), ("control", control)):
        m = run.metrics.dropna(subset=["attribute_accuracy"])[["step", "attribute_accuracy"]].copy()
        m["seen_biographies"] = m["step"] * run.config.train.batch_size * SEEN_PER_SEQUENCE[name]
        curves.append(m.assign(run=name))
    both = pd.concat(curves)
    grid = np.linspace(0, both.groupby("run")["seen_biographies"].max().min(), 9)[1:]
    r4 = pd.DataFrame(
        {
            "seen_biographies": grid.astype(int),
            **{
                name: np.interp(grid, g["seen_biographies"], g["attribute_accuracy"]) for name, g in both.groupby("run")
            },
        }
    )
    r4["difference"] = r4["reading"] - r4["control"]
    print("\n### Seen accuracy (no retrieval) at equal seen-biography exposure (R4)\n")
    print(markdown(r4.round(3)))

    study = retrieve(
        reading,
        RetrievalConfig(
            name="bm25-long-baseline",
            modes=("none", "bm25"),
            votes=0,
            m=1,
            eval_size=args.size,
            baseline_run=str(trained["long"].path),
        ),
    )
    mult = study.multipliers[study.multipliers["mode"] == "bm25"]
    print(f"\n### BM25 multiplier on the {study.meta['baseline']['times_longer']:.0f}x longer baseline (R3)\n")
    print(
        markdown(mult[["step", "accuracy", "multiplier", "multiplier_lo", "multiplier_hi", "bound", "status"]].round(3))
    )
    print(
        f"\nR3: lower bound > 1 at {int(((mult['multiplier_lo'] > 1) & (mult['status'] == 'within')).sum())} "
        f"checkpoints (>= 3, none beyond)"
    )

    import matplotlib.pyplot as plt

    FIGURES.mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    for condition in acc.columns:
        ax.plot(acc.index, acc[condition], marker="o", ms=3, label=f"held-out, {condition}")
    m = reading.metrics.dropna(subset=["attribute_accuracy"])
    ax.plot(m["step"], m["attribute_accuracy"], "k--", label="seen, no context (memorisation)")
    ax.set(xlabel="training step", ylabel="attribute accuracy", title="reading vs memorisation (cpu-reading)")
    ax.legend(fontsize=7)
    fig.savefig(FIGURES / f"reading_cpu_seed{args.seed}.png", dpi=110, bbox_inches="tight")


if __name__ == "__main__":
    main()
