"""The CLI as researchers use it: help and version, --set, the twin model, runs --json, summary lines."""

from __future__ import annotations

import json
import re

import pytest

from workbench import __version__
from workbench.cli import build_parser, main
from workbench.config import PRESETS, preset
from workbench.run import load_run
from workbench.training import checkpoint
from workbench.training.checkpoint import scheduled_steps


def test_version_and_help_show_defaults(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"workbench {__version__}"
    assert main(["train", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "{" + ",".join(PRESETS) + "}" in help_text and "default: cpu-quick" in help_text
    for action in build_parser()._subparsers._group_actions[0].choices["train"]._actions:
        assert action.help, f"{action.option_strings} has no help"


def test_set_overrides_any_field_and_is_recorded(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--preset",
                "tiny",
                "--steps",
                "20",
                "--set",
                "train.lr=1e-3",
                "--set",
                "data.sampler.kind=power_law",
                "--set",
                "data.sampler.alpha=0.5",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    cfg = load_run(out).config
    assert (cfg.train.steps, cfg.train.lr, cfg.data.sampler.kind, cfg.data.sampler.alpha) == (
        20,
        1e-3,
        "power_law",
        0.5,
    )
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.match(rf"run {re.escape(str(out))}: finished at step 20; .*final attribute accuracy \d\.\d{{3}}", line)


def test_a_presets_checkpoints_follow_its_steps():
    assert scheduled_steps(preset("tiny").train) == (0, 10, 20, 30, 40)
    assert scheduled_steps(preset("tiny", train={"steps": 400}).train) == (0, 100, 200, 300, 400)
    assert scheduled_steps(preset("tiny", train={"checkpoint_steps": (0, 7), "steps": 9}).train) == (0, 7, 9)
    study = scheduled_steps(preset("cpu-quick").train)
    assert study[0] == 0 and study[-1] == 3500 and len(study) > 32
    assert not hasattr(checkpoint, "schedule")  # one name: `schedule` is TrainConfig's learning-rate schedule


def test_patch_from_trains_the_twin_model_of_the_reference(tiny_run, tmp_path, capsys):
    out = tmp_path / "twin"
    assert main(["train", "--patch-from", f"{tiny_run.path}@40", "--steps", "10", "--out", str(out), "--quiet"]) == 0
    twin = load_run(out).config
    ref = tiny_run.config
    assert twin.replace(patch=None, train={"steps": 40}) == ref  # same config and seed, only the flag given differs
    assert twin.patch.reference_step == 40 and not twin.patch.allow_other_seed
    other = tmp_path / "other-seed"
    assert (
        main(
            [
                "train",
                "--patch-from",
                f"{tiny_run.path}@40",
                "--steps",
                "10",
                "--seed",
                "3",
                "--out",
                str(other),
                "--quiet",
            ]
        )
        == 0
    )
    assert load_run(other).config.patch.allow_other_seed  # another seed on purpose, recorded in config.json
    assert json.loads((other / "config.json").read_text())["patch"]["allow_other_seed"] is True


def test_runs_json_lists_status(tiny_run, capsys):
    assert main(["runs", "--root", str(tiny_run.path.parent), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    mine = [r for r in rows if r["run"] == tiny_run.name]
    assert mine and mine[0]["status"] == "finished" and mine[0]["last_step"] == 40


@pytest.mark.parametrize("argv", [["--help"], ["data", "stats", "--help"], ["train", "--help"]])
def test_help_does_not_load_transformer_lens(argv):
    import subprocess
    import sys

    code = (
        f"import sys; from workbench.cli import main; main({argv!r}); "
        "print('transformer_lens' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.strip().splitlines()[-1] == "False False"
