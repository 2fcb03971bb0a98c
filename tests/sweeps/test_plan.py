"""Planning a sweep: each point's config is the one the single-run API would build, for the three bases
(a preset, a fine-tuning base run, a patching reference run); nothing is trained or written."""

from __future__ import annotations

import pytest

from workbench import experiment
from workbench.config import override, preset
from workbench.finetuning import finetune_config
from workbench.patching.grid import grid_config
from workbench.run import load_run


def test_preset_points_are_overridden_presets(tmp_path):
    planned = experiment.plan_sweep(
        {
            "name": "p",
            "preset": "tiny",
            "out": str(tmp_path / "p"),
            "set": {"train.checkpoint_steps": [0, 20]},
            "grid": {"data.sampler.alpha": [0.5], "model.act_fn": ["relu"]},
        }
    )
    (trial,) = planned.trials
    assert trial.config == override(
        preset("tiny"), ["train.checkpoint_steps=0,20", "data.sampler.alpha=0.5", "model.act_fn=relu"]
    )
    assert trial.out == (tmp_path / "p" / "alpha0.5-act_fnrelu").absolute()
    assert not (tmp_path / "p").exists()


def test_finetune_points_match_finetune_config(tiny_run_dir, tmp_path):
    planned = experiment.plan_sweep(
        {
            "name": "f",
            "out": str(tmp_path / "f"),
            "finetune": {"base_run": str(tiny_run_dir), "base_step": 40, "steps": 10},
            "grid": {"finetune.n_new": [8, 32], "finetune.replay_weight": [0.0, 1.0]},
        }
    )
    assert len(planned.trials) == 4
    for t in planned.trials:
        ft = t.config.finetune
        assert t.config == finetune_config(str(tiny_run_dir), 40, ft.n_new, ft.replay_weight, steps=10)
    assert {(t.config.finetune.n_new, t.config.finetune.replay_weight) for t in planned.trials} == {
        (8, 0.0),
        (8, 1.0),
        (32, 0.0),
        (32, 1.0),
    }


def test_patch_points_match_the_grid(tiny_run_dir, tmp_path):
    planned = experiment.plan_sweep(
        {
            "name": "g",
            "out": str(tmp_path / "g"),
            "patch": {"reference_run": str(tiny_run_dir)},
            "trial_name": "patch-ref{patch.reference_step}-start{patch.start_step}",
            "set": {"patch.start_step": 0, "patch.mix": 0.5},
            "grid": {"patch.reference_step": [0, 40]},
        }
    )
    reference = load_run(tiny_run_dir)
    assert [t.name for t in planned.trials] == ["patch-ref0-start0", "patch-ref40-start0"]
    for t, step in zip(planned.trials, (0, 40)):
        assert t.config == grid_config(reference, step, 0).replace(patch={"mix": 0.5})


def test_a_point_failing_feature_validation_names_itself(tiny_run_dir, tmp_path):
    with pytest.raises(ValueError, match=r"point reference_step7: patch\.reference_step=7 has no checkpoint"):
        experiment.plan_sweep(
            {
                "name": "g",
                "out": str(tmp_path / "g"),
                "patch": {"reference_run": str(tiny_run_dir)},
                "grid": {"patch.reference_step": [0, 7]},
            }
        )
    with pytest.raises(ValueError, match=r"point n_new0: finetune\.n_new=0 is out of range"):
        experiment.plan_sweep(
            {
                "name": "f",
                "out": str(tmp_path / "f"),
                "finetune": {"base_run": str(tiny_run_dir)},
                "grid": {"finetune.n_new": [0]},
            }
        )
