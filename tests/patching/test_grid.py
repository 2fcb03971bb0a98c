"""patch_grid: one patched run per (reference step, start step), baseline row, skip/resume, grid.csv."""

import math
import shutil
from types import SimpleNamespace

import pandas as pd
import pytest
from interrupts import KillAt
from matplotlib.figure import Figure

from workbench.experiment import patch_grid
from workbench.experiment import train as real_train
from workbench.patching.grid import (
    GRID_COLUMNS,
    default_out_root,
    default_reference_steps,
    grid_curves,
    plan_grid,
    read_grid_csv,
    summary_row,
)
from workbench.run import load_run
from workbench.viz import plot_grid

SHORT = {"train": {"steps": 6, "checkpoint_steps": (0, 3, 6), "eval_every": 3}}


@pytest.mark.ray  # the grid trains as a sweep on a local Ray
def test_grid_trains_skips_and_resumes(tiny_run, tiny_run_dir, tmp_path):
    root = tmp_path / "grid"
    _, _, (killed,) = plan_grid(tiny_run_dir, [40], out_root=root, config_overrides=SHORT)
    with pytest.raises(KeyboardInterrupt):  # a grid run killed after its step-3 checkpoint
        real_train(killed.config, killed.out, progress=False, callbacks=[KillAt(4)])
    assert load_run(killed.out).status == "failed"
    step3 = load_run(killed.out).manifest["checkpoints"]["3"]["sha256"]

    df = patch_grid(tiny_run_dir, [0, 40], out_root=root, config_overrides=SHORT, progress=False)
    first = load_run(root / "patch-ref0-start0")
    assert first.status == "finished"
    stamps = {p: p.stat().st_mtime_ns for p in root.glob("patch-*/manifest.json")}
    again = patch_grid(tiny_run_dir, [0, 40], out_root=root, config_overrides=SHORT, progress=False)
    pd.testing.assert_frame_equal(again, df)
    assert {p: p.stat().st_mtime_ns for p in root.glob("patch-*/manifest.json")} == stamps  # all skipped
    assert list(df.columns) == list(GRID_COLUMNS)
    assert df["reference_step"].tolist()[1:] == [0, 40] and pd.isna(df["reference_step"].iloc[0])
    assert pd.isna(df["start_step"].iloc[0]) and df["start_step"].tolist()[1:] == [0, 0]
    assert df["run"].iloc[0] == str(tiny_run.path)
    assert df["final_attribute_loss"].iloc[0] == tiny_run.metrics["attribute_loss"].iloc[-1]
    resumed = load_run(root / "patch-ref40-start0")
    assert resumed.status == "finished" and resumed.metrics["step"].tolist() == [0, 3, 6]
    assert resumed.manifest["checkpoints"]["3"]["sha256"] == step3  # resumed from step 3, not retrained
    assert resumed.config.patch.reference_step == 40 and resumed.config.train.steps == 6
    assert df["final_attribute_accuracy"].iloc[2] == resumed.metrics["attribute_accuracy"].iloc[-1]

    saved = pd.read_csv(root / "grid.csv")
    assert saved["reference_step"].astype(str).tolist() == ["none", "0", "40"]
    assert saved["run"].tolist() == df["run"].tolist()
    pd.testing.assert_frame_equal(read_grid_csv(root / "grid.csv"), df)  # the writer's twin: 'none' -> <NA>

    curves = grid_curves(df)
    assert list(curves.columns) == ["reference_step", "start_step", "step", "attribute_loss", "attribute_accuracy"]
    assert len(curves) == len(tiny_run.metrics) + 2 * 3
    assert curves["reference_step"].isna().sum() == len(tiny_run.metrics)
    assert isinstance(plot_grid(df, curves), Figure)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"reference_steps": [0, 7]}, "reference_step=7"),
        ({"reference_steps": []}, "reference_steps"),
        ({"reference_steps": [0], "start_steps": [0, 9]}, "start_step=9"),
        ({"reference_steps": [0], "config_overrides": {"model": {"d_model": 48}}}, "architecture"),
        ({"reference_steps": [0], "config_overrides": {"patch": None}}, "patch"),
    ],
)
def test_bad_grids_fail_before_any_training(tiny_run_dir, tmp_path, kwargs, match):
    root, kwargs = tmp_path / "bad-grid", dict(kwargs)
    with pytest.raises(ValueError, match=match):
        patch_grid(
            tiny_run_dir,
            out_root=root,
            config_overrides=kwargs.pop("config_overrides", SHORT),
            progress=False,
            **kwargs,
        )
    assert not root.exists()


def test_existing_run_with_another_config_is_rejected(tiny_run_dir, tmp_path):
    root = tmp_path / "grid"
    shutil.copytree(tiny_run_dir, root / "patch-ref0-start0")  # an unpatched run where a patched one belongs
    with pytest.raises(ValueError, match="another config"):
        patch_grid(tiny_run_dir, [0], out_root=root, config_overrides=SHORT, progress=False)


def test_summary_row_and_default_out_root(tiny_run):
    metrics = pd.DataFrame(
        {"step": [0, 10, 20, 30], "attribute_loss": [5.0, 3.0, 2.0, 1.0], "attribute_accuracy": [0.0, 0.3, 0.5, 0.9]}
    )
    row = summary_row(40, 0, SimpleNamespace(metrics=metrics, path="x"))
    assert row["steps_to_50pct_accuracy"] == 20 and row["final_attribute_loss"] == 1.0
    never = summary_row(40, 0, SimpleNamespace(metrics=metrics.assign(attribute_accuracy=0.1), path="x"))
    assert math.isnan(never["steps_to_50pct_accuracy"])
    assert default_out_root(tiny_run) == tiny_run.path.parent / "tiny-patch-grid"
    assert default_reference_steps(tiny_run) == [0, 10, 20, 40]  # nearest checkpoints to 0, 1/16 .. 1 of 40
