"""The linear datamodeling score (LDS) of an attribution: does the summed influence of a random training subset
predict the head's measure after retraining on that subset? The field's standard validation of an attribution
method (Park et al. 2023), here on one head's measure.

For M random subsets of the window (each the window less a random `percent`% of its sequences, seeded by the
retrain's selection seed) the attributed run's twin is retrained through the window (`workbench.attribution.retrain`)
and the head's measure is taken at the attribution's checkpoint, on the attribution's measure set. The prediction
for a subset is minus the summed influence of the sequences it removes (influence > 0 promotes the head); the LDS is
Spearman's correlation of predictions and outcomes over the M subsets, with a percentile bootstrap interval over
subsets. One set of retrains serves every attribution of the same run and window (exact, EK-FAC, a gradient product,
trajectory scoring): the random subsets do not depend on the scores.

    workbench.sweep(lds_spec(attribution, m=32))               # M retrains of the run's twin
    lds({"exact": a, "ekfac": b}, runs)                         # a row per attribution: lds, lo, hi, m
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.attribution.formation import measure_over_training
from workbench.attribution.influence import compare
from workbench.attribution.retrain import retrain_spec, select
from workbench.attribution.window import Attribution
from workbench.config import check, check_int
from workbench.run import load_run


def lds_spec(attribution: Attribution, m: int = 32, percent: float = 50.0, name: str = "lds", cpus: int = 1) -> dict:
    """A sweep spec: `m` retrains of the attributed run's twin, each with a random `percent`% of the window removed
    (selection seeds 0..m-1)."""
    check_int("m", m, 2)
    arm = {"action": "remove", "selection": "random", "percent": percent}
    return retrain_spec([attribution], arms=[arm], selection_seeds=range(m), name=name, cpus=cpus)


def outcomes(reference: Attribution, runs) -> pd.DataFrame:
    """run, edit, measure: per retrain of `reference`'s run, its EditConfig and the head's measure at the
    attribution's checkpoint (on its measure set)."""
    c = reference.config
    rows = []
    for path in runs:
        run = load_run(path)
        edit = run.config.edit
        check(
            edit is not None and edit.selection == "random" and edit.action == "remove",
            "runs[]",
            "retrains that remove a random subset (lds_spec)",
            path,
        )
        curve = measure_over_training(run, c.layer, c.head, c.measure, c.measure_size, steps=[c.step], progress=False)
        rows.append({"run": str(run.path), "edit": edit, "measure": curve["measure"].iat[0]})
    return pd.DataFrame(rows)


def predictions(attribution: Attribution, reference: Attribution, edits) -> np.ndarray:
    """Per retrain's EditConfig: minus the summed influence (by `attribution`) of the sequences it removed."""
    scores = attribution.sequences.set_index(["step", "row"])["influence"]
    return np.asarray([-scores.loc[list(map(tuple, select(reference, e).tolist()))].sum() for e in edits])


def lds(attributions: dict[str, Attribution], runs, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """A row per named attribution: lds (Spearman of predictions and outcomes over the retrains), its 95% bootstrap
    interval over subsets (lo, hi) and m. The first attribution is the reference the retrains were planned from;
    every attribution must score the same run and window."""
    reference = next(iter(attributions.values()))
    ref = (reference.config.start, reference.config.end, reference.run_path)
    for name, a in attributions.items():
        mine = (a.config.start, a.config.end, a.run_path)
        check(mine == ref, f"attributions[{name!r}]", f"an attribution of the reference's run and window {ref}", mine)
    measured = outcomes(reference, runs)
    out = measured["measure"].to_numpy()
    resamples = np.random.default_rng(seed).integers(0, len(out), (n_boot, len(out)))
    rows = []
    for name, a in attributions.items():
        pred = predictions(a, reference, measured["edit"])
        boot = [compare(pred[i], out[i])["spearman"] for i in resamples if np.ptp(pred[i]) > 0 and np.ptp(out[i]) > 0]
        lo, hi = np.percentile(boot, [2.5, 97.5])
        rows.append({"attribution": name, "lds": compare(pred, out)["spearman"], "lo": lo, "hi": hi, "m": len(out)})
    return pd.DataFrame(rows)
