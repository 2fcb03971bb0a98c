"""Adaptive budgets: a sweep trial is extended until it has escaped and memorised, or reaches its maximum; and what a
sweep has cost so far."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from workbench.config import preset
from workbench.sweeps import Resources, status_table, sweep_cost
from workbench.sweeps.spec import Budget, SweepSpec


def test_done_means_escaped_and_memorised_or_out_of_budget():
    b = Budget(max_steps=1000, until_accuracy=0.5, plateau_multiple=2.0)
    assert not b.done(400, 0.9, 300.0)  # memorised, but not yet twice its plateau end
    assert b.done(600, 0.9, 300.0) and not b.done(600, 0.4, 300.0)
    assert not b.done(900, 0.9, math.inf)  # still on its plateau
    assert b.done(50, 0.6, 0.0)  # no plateau to escape
    assert b.done(1000, 0.0, math.inf)  # out of budget
    assert [b.next_steps(s) for s in (100, 400, 600)] == [200, 800, 1000]


@pytest.mark.parametrize(
    "table, message",
    [
        ({"max_steps": 0}, r"budget\.max_steps=0 is out of range"),
        ({"max_steps": 10, "factor": 1.0}, r"budget\.factor=1\.0"),
        ({"max_steps": 10, "until": 0.5}, r"budget\.until"),
    ],
)
def test_bad_budgets_are_refused_with_the_spec(table, message):
    with pytest.raises(ValueError, match=message):
        SweepSpec(name="b", preset="tiny", budget=table)


def test_a_budgeted_trial_is_extended_to_its_maximum_and_replanned_as_is(tmp_path):
    from workbench.experiment import budgeted, plan_sweep

    spec = {
        "name": "b",
        "preset": "tiny",
        "out": str(tmp_path / "sweep"),
        "grid": {"seed": [0]},
        "set": {"train.schedule": "constant", "train.steps": 10, "train.n_checkpoints": 1},
        "budget": {"max_steps": 30, "until_accuracy": 1.0, "factor": 2.0},
    }
    trial = plan_sweep(spec).trials[0]
    run = budgeted(trial.config, trial.out, progress=False, budget=SweepSpec.from_dict(spec).budget)
    assert run.config.train.steps == 30 and run.status == "finished"
    extensions = json.loads((run.path / "manifest.json").read_text())["extensions"]
    assert [(e["from_steps"], e["to_steps"]) for e in extensions] == [(10, 20), (20, 30)]
    assert plan_sweep(spec).trials[0].out == run.path  # the longer run is this trial's, not another config
    planned = plan_sweep(spec)
    status = status_table(planned.root, planned.trials).iloc[0]
    assert (status["status"], status["step"], status["steps"]) == ("finished", 30, 30)  # the run's, not 10
    with pytest.raises(ValueError, match="another config"):
        plan_sweep({k: v for k, v in spec.items() if k != "budget"})
    assert preset("tiny").train.schedule == "cosine"  # (the spec had to set a constant schedule)


@pytest.mark.parametrize(
    "resources, expected",
    [
        (Resources(cpus=2), "cost so far: 2.00 CPU-hours (2 of 3 trials started"),
        (Resources(cpus=1, gpus=0.5), "cost so far: 1.00 CPU-hours, 0.50 GPU-hours (2 of 3 trials started"),
    ],
)
def test_a_sweeps_cost_is_its_trials_training_time_times_what_each_requests(resources, expected):
    table = pd.DataFrame({"trial": ["a", "b", "c"], "wall_s": [1800.0, 1800.0, 0.0]})
    assert sweep_cost(table, resources).startswith(expected)
