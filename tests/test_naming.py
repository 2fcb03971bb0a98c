"""Run names come from one module (workbench.naming): the CLI, grids, fine-tuning, reference runs and sweeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench import naming
from workbench.config import preset


def test_run_names_by_kind(tiny_run_dir):
    from workbench.finetuning import finetune_config
    from workbench.patching.grid import twin_config
    from workbench.run import load_run

    ref = load_run(tiny_run_dir)
    assert naming.run_name(preset("tiny", seed=3)) == "tiny-seed3"
    twin = twin_config(ref.path, ref.config, 20, 10)
    assert naming.run_name(twin) == "patch-ref20-start10"
    assert naming.default_run_path(twin) == ref.path.with_name(f"{ref.path.name}-patch-ref20-start10")
    ft = finetune_config(ref.path, 40, 8, 0.5)
    assert naming.default_run_path(ft) == ref.path.with_name(f"{ref.path.name}-ft8-replay0.5")


def test_cli_grid_and_reference_runs_are_named_by_naming(tiny_run_dir, tmp_path, monkeypatch):
    from workbench import cli, experiment
    from workbench.patching.grid import plan_grid

    monkeypatch.setenv("WORKBENCH_CHECKPOINTS", str(tmp_path / "ck"))
    (tmp_path / "ck").mkdir()
    assert cli.main(["train", "--preset", "tiny", "--steps", "2", "--seed", "5", "--quiet"]) == 0
    cfg = preset("tiny", seed=5, train={"steps": 2})
    assert (naming.default_run_path(cfg) / "manifest.json").is_file()
    assert naming.default_run_path(cfg) == tmp_path / "ck" / "tiny-seed5"

    _, root, jobs = plan_grid(tiny_run_dir, [0, 20], [0], out_root=tmp_path / "grid")
    assert [j.out for j in jobs] == [root / naming.run_name(j.config) for j in jobs]

    monkeypatch.setenv("WORKBENCH_PRESET", "tiny")
    run = experiment.reference_run(seed=0, progress=False)
    assert Path(run.path) == naming.default_run_path(preset("tiny"))


def test_sweep_points_are_named_by_naming():
    from workbench.sweeps.spec import SweepSpec

    spec = SweepSpec(name="n", preset="tiny", grid={"data.n_individuals": [16, 32], "seed": [0]})
    assert [n for n, _ in spec.points()] == [
        naming.point_name(v, {"data.n_individuals": v["data.n_individuals"], "seed": 0}) for _, v in spec.points()
    ]
    assert [n for n, _ in spec.points()] == ["n_individuals16-seed0", "n_individuals32-seed0"]
    with pytest.raises(ValueError, match=r"trial_name='x\{bogus\}': bogus is not a path of the sweep"):
        naming.point_name({"seed": 0}, {}, "x{bogus}")
