"""Extending a finished constant-lr run to more steps equals training the longer run from the start; runs whose
schedule or batches depend on their length are refused before any compute."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from workbench.config import preset
from workbench.experiment import resume, train, train_or_resume

CONSTANT = preset("tiny", train={"schedule": "constant", "steps": 40, "checkpoint_steps": (0, 20, 40, 60)})


@pytest.mark.slow  # three tiny runs
def test_extending_a_constant_lr_run_equals_the_longer_run(tmp_path):
    longer = train(CONSTANT.replace(train={"steps": 60}), tmp_path / "long", progress=False)
    short = train(CONSTANT, tmp_path / "short", progress=False)
    assert short.status == "finished" and short.checkpoint_steps == [0, 20, 40]
    extended = resume(short.path, progress=False, steps=60)
    assert extended.status == "finished" and extended.config == longer.config
    pd.testing.assert_frame_equal(extended.metrics, longer.metrics, check_exact=True)
    batch = longer.data.eval_batch("seen", 4)
    assert torch.equal(extended.load_model(60)(batch.tokens), longer.load_model(60)(batch.tokens))
    manifest = json.loads((extended.path / "manifest.json").read_text())
    assert [(e["from_steps"], e["to_steps"]) for e in manifest["extensions"]] == [(40, 60)]
    # a sweep asking for the longer budget finds the run extended, and finished
    assert train_or_resume(CONSTANT.replace(train={"steps": 60}), extended.path, progress=False).status == "finished"


def test_train_or_resume_extends_the_same_run_with_fewer_steps(tmp_path):
    short = train(CONSTANT.replace(train={"steps": 20}), tmp_path / "r", progress=False)
    again = train_or_resume(CONSTANT.replace(train={"steps": 40}), short.path, progress=False)
    assert again.config.train.steps == 40 and again.status == "finished" and again.metrics["step"].max() == 40


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"train": {"schedule": "cosine"}},
            r"train\.schedule='cosine' is out of range: allowed constant to extend a run",
        ),
        ({"data": {"sampler": {"kind": "sequential"}}}, r"data\.sampler\.kind='sequential' is out of range"),
    ],
)
def test_runs_whose_length_shapes_them_are_refused(tmp_path, change, message):
    run = train(CONSTANT.replace(train={"steps": 10}).replace(**change), tmp_path / "r", progress=False)
    before = {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()}
    with pytest.raises(ValueError, match=message):
        resume(run.path, progress=False, steps=20)
    assert {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()} == before


def test_shortening_is_refused_and_the_cli_names_the_flag(tmp_path, capsys):
    from workbench.cli import main

    run = train(CONSTANT.replace(train={"steps": 10}), tmp_path / "r", progress=False)
    with pytest.raises(ValueError, match=r"--steps=5 is out of range: allowed an integer in \[10, "):
        resume(run.path, progress=False, steps=5)
    assert main(["train", "--resume", str(run.path), "--steps", "5", "--quiet"]) == 2
    assert "--steps=5 is out of range" in capsys.readouterr().err
