"""The linear datamodeling score of each influence estimator on the tiny preset (issue 26; docs/method.md §6.1).

    python analysis/lds_tiny.py [--seeds 0 1 2] [--m 48] [--measure attention]

Per seed: a tiny run with a checkpoint every 5 steps (lds-tiny-seed{seed} under the checkpoints root), the head L1H0
and the window [10, 20) scored at checkpoint 20 (all 160 sequences fit the Fisher) by: exact influence (Woodbury,
the default), exact along the trajectory (segments [10, 15) at 10 and [15, 20) at 15), EK-FAC, and a plain gradient
product (exact with a dominant damping, 1e6: (F + λI)⁻¹ ≈ I/λ). Then M retrains of the run's twin, each without a
random half of the window (`lds_spec`), and per estimator the LDS (Spearman of minus the summed influence removed vs
the head's measure at step 20 after retraining) with a 95% bootstrap interval over subsets. Prints markdown for
analysis/NOTES.md with the CPU cost of each part.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
from cpu_sweeps import markdown, train_trials  # analysis/, beside this script

import workbench as wb
from workbench.attribution.lds import lds, lds_spec
from workbench.config import preset
from workbench.experiment import train_or_resume
from workbench.naming import checkpoints_root

WINDOW, HEAD = (10, 20), (1, 0)
ESTIMATORS = {  # name: AttributionConfig fields beyond the window and head
    "exact": {},
    "exact, trajectory": {"scoring": "trajectory"},
    "ekfac": {"estimator": "ekfac"},
    "gradient product": {"damping": 1e6},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--m", type=int, default=48)
    p.add_argument("--measure", choices=("attention", "logit"), default="attention")
    args = p.parse_args()
    tables = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        config = preset("tiny", seed=seed, train={"n_checkpoints": 8})
        run = train_or_resume(config, checkpoints_root() / f"lds-tiny-seed{seed}")
        t1 = time.perf_counter()
        window = {"layer": HEAD[0], "head": HEAD[1], "start": WINDOW[0], "end": WINDOW[1], "measure": args.measure}
        attributions = {
            name: wb.attribute(run, **window, step=0 if "scoring" in kw else WINDOW[1], **kw)
            for name, kw in ESTIMATORS.items()
        }
        costs = ", ".join(f"{n} {a.meta['seconds']['total']:.1f} s" for n, a in attributions.items())
        t2 = time.perf_counter()
        runs = train_trials(lds_spec(attributions["exact"], m=args.m, name=f"lds-tiny-seed{seed}-{args.measure}"))
        t3 = time.perf_counter()
        table = lds(attributions, runs)
        tables.append(table.assign(seed=seed))
        print(
            f"seed {seed}: run {t1 - t0:.0f} s, attributions {t2 - t1:.0f} s "
            f"({costs}), "
            f"{len(runs)} retrains {t3 - t2:.0f} s (one process, no Ray: tiny trials are shorter than its start)"
        )
    both = pd.concat(tables, ignore_index=True)
    print(f"\n### LDS on tiny (head L1H0, window {WINDOW}, measure {args.measure}, M = {args.m} half-window subsets)\n")
    print(markdown(both[["seed", "attribution", "lds", "lo", "hi", "m"]].round(3)))
    mean = both.groupby("attribution", sort=False)[["lds", "lo", "hi"]].mean().round(3).reset_index()
    print("\nmean over seeds:\n" + markdown(mean))


if __name__ == "__main__":
    main()
