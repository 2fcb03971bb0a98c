"""Fine-tuning in the study's regime (issue 25 item 3; docs/method.md §4.7): drops with intervals over bases, the
replay statement, attention stability and the MLP locus on the same runs.

    workbench train --preset cpu-quick --seed S   # S = 0, 1, 2: the annealed bases (~30 min each on one core)
    workbench sweep cpu/finetune-study            # 45 fine-tuning runs (210-460 s each on one core)
    python analysis/finetune_study.py [--spec cpu/finetune-study]

Prints, per (new individuals, replay weight): the initial drop (seen accuracy lost at its worst in the first
quarter) and the final drop, means over the bases with 95% t-intervals, and their change from no replay paired by
base. The replay statement is judged, per number of new individuals, at the largest replay weight (fixed before
the runs): "replay reduces the final drop but not the initial one" holds when the final drop's change has an
interval below 0 and the initial drop's change has an interval containing 0. Then, on the runs without and with the
largest replay at the largest n_new: attention stability (Jensen-Shannon distance of each head's attention at the
last checkpoint from the base checkpoint, the largest over heads, against the whole change of the base run's own
attention from its initialisation to its last checkpoint; its last pre-training interval is no yardstick, since the
cosine has annealed the learning rate to ~1e-7 there) and the MLP locus (the share of old individuals whose top MLP
keys or decoded values changed, per layer). Writes analysis/figures/finetune_study.png.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
from cpu_sweeps import markdown  # analysis/, beside this script

import workbench as wb
from workbench.experiment import sweep_root
from workbench.probes import overwrite_over_checkpoints
from workbench.stability import attention_stability, pretraining_drift
from workbench.sweeps import finetune_drops, finetune_summary, replay_verdict, sweep_table
from workbench.viz import plot_finetune_summary

FIGURES = Path(__file__).resolve().parent / "figures"


def statement(summary: pd.DataFrame) -> list[str]:
    """The replay statement per n_new (`replay_verdict`), with the numbers it rests on."""
    lines = []
    for v in replay_verdict(summary).to_dict("records"):
        change = lambda d, v=v: f"{v[d]:+.3f} [{v[d + '_lo']:+.3f}, {v[d + '_hi']:+.3f}]"  # noqa: E731
        lines.append(
            f"n_new {v['n_new']:g}, replay {v['replay_weight']:g} vs none: final drop {change('final_drop_vs_none')}, "
            f"initial drop {change('initial_drop_vs_none')}: final reduced {v['final_reduced']}, initial unchanged "
            f"{v['initial_unchanged']}: the statement {'holds' if v['holds'] else 'fails'}"
        )
    return lines


def locus(table: pd.DataFrame) -> pd.DataFrame:
    """Attention stability and MLP overwrite at the last checkpoint of the runs without and with the largest
    replay at the largest n_new, one row per run and layer."""
    n_new, weight = table["finetune.n_new"].max(), table["finetune.replay_weight"].max()
    pick = table[(table["finetune.n_new"] == n_new) & table["finetune.replay_weight"].isin([0.0, weight])]
    totals: dict[str, pd.Series] = {}  # per base: its attention's whole change, read once

    def total(base_run: str) -> pd.Series:
        if base_run not in totals:
            base = wb.load_run(base_run)
            drift = pretraining_drift(base, progress=False)
            drift = drift[(drift["reference"] == "start") & (drift["step"] == base.checkpoint_steps[-1])]
            totals[base_run] = drift.groupby("layer")["distance"].max()
        return totals[base_run]

    rows = []
    for _, r in pick.iterrows():
        run = wb.load_run(r["run"])
        last = run.checkpoint_steps[-1]
        attn = attention_stability(run, progress=False)
        attn = attn[attn["step"] == last].groupby("layer")["distance"].max()
        drift = total(run.config.finetune.base_run)
        over = overwrite_over_checkpoints(run, steps=[last], progress=False).set_index("layer")
        for layer in attn.index:
            rows.append(
                {
                    "base": Path(run.config.finetune.base_run).name,
                    "n_new": n_new,
                    "replay_weight": r["finetune.replay_weight"],
                    "layer": layer,
                    "attention_js_max": attn[layer],
                    "base_total_js_max": drift.get(layer, float("nan")),
                    "keys_changed": over.loc[layer, "keys_changed"],
                    "values_changed": over.loc[layer, "values_changed"],
                }
            )
    return pd.DataFrame(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spec", default="cpu/finetune-study", help="a fine-tuning sweep spec, already run")
    args = p.parse_args()
    root = sweep_root(args.spec)
    if not (root / "sweep.json").is_file():
        p.error(f"--spec {args.spec}: not run yet (no {root / 'sweep.json'}); run `workbench sweep {args.spec}`")
    t0 = time.perf_counter()
    table = sweep_table(root)
    drops = finetune_drops(table)
    summary = finetune_summary(drops)
    print(f"### Drops over bases ({drops['finetune.base_run'].nunique()} bases, {len(drops)} runs)\n")
    print(markdown(summary.round(3)))
    print("\n" + "\n".join(statement(summary)))
    FIGURES.mkdir(exist_ok=True)
    plot_finetune_summary(summary).savefig(FIGURES / "finetune_study.png", dpi=110)
    print("\n### Attention stability and the MLP locus (last checkpoint vs the base)\n")
    print(markdown(locus(table[table["status"] == "finished"]).round(3)))
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
