"""The toy associative memory (docs/method.md §4.8): forgetting during fine-tuning, with and without replay.

    python analysis/toy_memory.py [--replay 0 0.1 1] [--n-new 1024] [--threads 1]

Pre-trains the default `ToyMemoryConfig` (8,192 random unit-norm 64-d keys -> 30 values, 256 ReLU
units) and fine-tunes it on new pairs at each replay weight. Writes analysis/figures/toy_memory.png and
analysis/figures/toy_memory.csv (all curves, long format) and prints one line per replay weight:
pre-training accuracy and time, old-pair accuracy after 100 fine-tuning steps and at the end (the
initial and the final drop), new-pair accuracy at the end, and the first step at which the new pairs
reach 90% accuracy.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from workbench.atomic import atomic_path, atomic_write_csv
from workbench.probes.toy_memory import ToyMemoryConfig, run_toy_memory
from workbench.viz import plot_toy_memory

FIGURES = Path(__file__).resolve().parent / "figures"


def summary(df: pd.DataFrame, label: str, seconds: float) -> dict:
    pre, ft = df[df["phase"] == "pretrain"], df[df["phase"] == "finetune"]
    reached = ft[ft["new_accuracy"] >= 0.9]["step"]
    at = lambda step: float(ft[ft["step"] >= step]["old_accuracy"].iloc[0])  # noqa: E731
    return {
        "run": label,
        "pretrain_old_acc": float(pre["old_accuracy"].iloc[-1]),
        "old_acc_ft100": at(100),
        "old_acc_final": float(ft["old_accuracy"].iloc[-1]),
        "new_acc_final": float(ft["new_accuracy"].iloc[-1]),
        "new_acc_0.9_step": int(reached.iloc[0]) if len(reached) else None,
        "seconds": round(seconds, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replay", type=float, nargs="+", default=[0.0, 0.1, 1.0])
    ap.add_argument("--n-new", type=int, default=ToyMemoryConfig.n_new)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dfs, rows = {}, []
    for w in args.replay:
        cfg = ToyMemoryConfig(replay_weight=w, n_new=args.n_new, eval_every=20)
        t0 = time.perf_counter()
        df = run_toy_memory(cfg)
        label = f"replay {w:g}"
        dfs[label] = df
        rows.append(summary(df, label, time.perf_counter() - t0))
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig = plot_toy_memory(dfs)
    with atomic_path(FIGURES / "toy_memory.png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    curves = pd.concat([df.assign(run=label) for label, df in dfs.items()], ignore_index=True)
    atomic_write_csv(FIGURES / "toy_memory.csv", curves)
    print("base config:", ToyMemoryConfig(n_new=args.n_new, eval_every=20))
    table = pd.DataFrame(rows).astype({"new_acc_0.9_step": "Int64"})
    print(table.to_string(index=False))
    print(f"wrote {FIGURES / 'toy_memory.png'} and {FIGURES / 'toy_memory.csv'}")


if __name__ == "__main__":
    main()
