"""The linear datamodeling score: its known answers, and the retrains it is measured on."""

import numpy as np
import pandas as pd
import pytest

import workbench.attribution.lds as lds_module
from workbench.config import EditConfig


def _edits(attribution, m: int) -> list[EditConfig]:
    return [EditConfig(str(attribution.path), selection="random", percent=50.0, selection_seed=s) for s in range(m)]


def test_lds_is_one_when_the_outcome_is_the_predicted_change_and_minus_one_when_reversed(attribution, monkeypatch):
    edits = _edits(attribution, 12)
    seqs = attribution.sequences.set_index(["step", "row"])["influence"]
    removed = [-seqs.loc[[tuple(p) for p in lds_module.select(attribution, e).tolist()]].sum() for e in edits]
    for sign, want in ((1.0, 1.0), (-1.0, -1.0)):
        frame = pd.DataFrame({"run": [f"r{i}" for i in range(12)], "edit": edits, "measure": sign * np.array(removed)})
        monkeypatch.setattr(lds_module, "outcomes", lambda reference, runs, frame=frame: frame)
        row = lds_module.lds({"exact": attribution}, runs=[], n_boot=200).iloc[0]
        assert row["lds"] == pytest.approx(want) and row["lo"] == pytest.approx(want) and row["m"] == 12


def test_an_attribution_of_another_window_is_refused(attribution, dense_run):
    other = lds_module.Attribution(attribution.path, attribution.config.__class__(1, 0, 10, 15), attribution.meta)
    with pytest.raises(ValueError, match=r"attributions\['other'\]"):
        lds_module.lds({"exact": attribution, "other": other}, runs=[])


@pytest.mark.slow  # three tiny retrains
def test_lds_on_real_retrains_reads_each_retrain_at_the_attributions_checkpoint(attribution, tmp_path, monkeypatch):
    import torch

    from workbench.attribution.measures import MEASURE_SEED_OFFSET, MEASURES
    from workbench.attribution.shim import HeadView
    from workbench.experiment import plan_sweep, train
    from workbench.run import load_run

    monkeypatch.setenv("WORKBENCH_CHECKPOINTS", str(tmp_path))
    planned = plan_sweep(lds_module.lds_spec(attribution, m=3))
    runs = [train(t.config, t.out, progress=False).path for t in planned.trials]
    measured = lds_module.outcomes(attribution, runs)
    c = attribution.config
    for path, got in zip(measured["run"], measured["measure"], strict=True):
        run = load_run(path)
        batch = run.data.eval_batch("seen", c.measure_size, seed_offset=MEASURE_SEED_OFFSET)
        with torch.no_grad():
            want = MEASURES[c.measure]()(HeadView(run.load_model(c.step), c.layer, c.head), batch).mean().item()
        assert got == pytest.approx(want, rel=1e-6)
    assert measured["measure"].std() > 0  # different subsets, different heads
    row = lds_module.lds({"exact": attribution}, runs, n_boot=50).iloc[0]
    assert row["m"] == 3 and -1 <= row["lo"] <= row["lds"] <= row["hi"] <= 1
