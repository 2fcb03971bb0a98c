"""Adaptive budgets: a sweep trial is extended until it has escaped and memorised, or reaches its maximum; and what a
sweep has cost so far."""

from __future__ import annotations

import json
import math

import numpy as np
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


def test_a_gate_run_is_held_to_the_gate_accuracy_and_the_others_to_until_accuracy():
    b = Budget(max_steps=1000, until_accuracy=0.5, gate_runs=["N8-seed0"], gate_accuracy=0.9)
    gate, other = b.for_run("N8-seed0"), b.for_run("N8-seed1")
    assert not gate.done(600, 0.7, 300.0) and gate.done(600, 0.95, 300.0)
    assert other is b and other.done(600, 0.7, 300.0)
    assert gate.done(1000, 0.1, math.inf)  # the maximum still binds a gate run


def test_the_accuracy_is_asked_for_only_when_it_decides():
    b, asked = Budget(max_steps=1000, until_accuracy=0.5), []
    accuracy = lambda: asked.append(1) or 0.7  # noqa: E731
    assert not b.done(500, accuracy, math.inf) and b.done(1000, accuracy, math.inf) and not asked
    assert b.done(600, accuracy, 300.0) and asked == [1]


@pytest.mark.parametrize("fresh, steps", [(0.2, 40), (0.9, 10)])
def test_a_budget_decides_on_the_fresh_evaluation_of_the_last_checkpoint(tmp_path, monkeypatch, fresh, steps):
    from workbench.experiment import budgeted, plan_sweep
    from workbench.run import Run

    seen = []
    monkeypatch.setattr(Run, "seen_accuracy", lambda run, size: seen.append(size) or np.full(8, fresh))
    spec = {
        "name": "f",
        "preset": "tiny",
        "out": str(tmp_path / "sweep"),
        "set": {"train.schedule": "constant", "train.steps": 10, "train.n_checkpoints": 1},
        "budget": {"max_steps": 40, "until_accuracy": 0.5, "plateau_multiple": 1.0, "eval_size": 256},
    }
    trial = plan_sweep(spec).trials[0]
    run = budgeted(trial.config, trial.out, progress=False, budget=plan_sweep(spec).spec.budget)
    assert run.config.train.steps == steps and set(seen) == {256}


@pytest.mark.parametrize(
    "table, message",
    [
        ({"max_steps": 0}, r"budget\.max_steps=0 is out of range"),
        ({"max_steps": 10, "factor": 1.0}, r"budget\.factor=1\.0"),
        ({"max_steps": 10, "until": 0.5}, r"budget\.until"),
        ({"max_steps": 10, "gate_accuracy": 1.5}, r"budget\.gate_accuracy=1\.5"),
        ({"max_steps": 10, "gate_runs": "seed0"}, r"budget\.gate_runs='seed0'.*a list of trial names"),
        ({"max_steps": 10, "gate_runs": ["seed0", "seed7"]}, r"budget\.gate_runs=\['seed7'\].*this sweep's trials"),
    ],
)
def test_bad_budgets_are_refused_with_the_spec(table, message):
    with pytest.raises(ValueError, match=message):
        SweepSpec(name="b", preset="tiny", grid={"seed": [0, 1]}, budget=table)


def test_a_budgeted_trial_is_extended_to_its_maximum_and_replanned_as_is(tmp_path):
    from workbench.experiment import budgeted, plan_sweep

    spec = {
        "name": "b",
        "preset": "tiny",
        "out": str(tmp_path / "sweep"),
        "grid": {"seed": [0]},
        "set": {"train.schedule": "constant", "train.steps": 10, "train.n_checkpoints": 1},
        "budget": {"max_steps": 30, "until_accuracy": 1.0, "factor": 2.0, "eval_size": 32},
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


def test_only_the_gate_run_of_a_sweep_is_trained_on_to_the_gate_accuracy(tmp_path):
    from workbench.experiment import budgeted, plan_sweep

    budget = {
        "max_steps": 20,
        "until_accuracy": 0.0,
        "plateau_multiple": 1.0,
        "gate_runs": ["seed0"],
        "gate_accuracy": 1.0,
        "eval_size": 32,
    }
    spec = {
        "name": "g",
        "preset": "tiny",
        "out": str(tmp_path / "sweep"),
        "grid": {"seed": [0, 1]},
        "set": {"train.schedule": "constant", "train.steps": 10, "train.n_checkpoints": 1},
        "budget": budget,
    }
    planned = plan_sweep(spec)
    steps = {
        t.name: budgeted(t.config, t.out, False, budget=planned.spec.budget).config.train.steps for t in planned.trials
    }
    assert steps == {"seed0": 20, "seed1": 10}  # 10 steps of tiny do not reach accuracy 1.0; 0.0 is met at once


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
