"""Sweeps of tiny trials on a local Ray: every point trained, finished ones skipped, interrupted ones
resumed exactly, failures reported and retried on request, bad specs refused before any trial, and the
CLI and the Python API giving the same run directories."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from rayproc import ray_pids, wait_gone

from workbench import experiment
from workbench.sweeps import read_plan
from workbench.training.loop import Callback
from workbench.training.stopping import Stopped

pytestmark = pytest.mark.ray

STEPS = 20


def spec(tmp_path: Path, name: str = "s", **extra) -> dict:
    return {
        "name": name,
        "preset": "tiny",
        "out": str(tmp_path / name),
        "set": {"train.steps": STEPS},
        "grid": {"seed": [0, 1]},
        **extra,
    }


def manifest(run: str | Path) -> dict:
    return json.loads((Path(run) / "manifest.json").read_text())


def test_every_point_trained_then_skipped(tmp_path, local_ray):
    table = experiment.sweep(spec(tmp_path), progress=False)
    assert list(table["trial"]) == ["seed0", "seed1"] and set(table["status"]) == {"finished"}
    assert list(table["step"]) == [STEPS, STEPS]
    assert (table["wall_s"] > 0).all()  # each trial's training time, read from its manifest
    for row in table.itertuples():
        assert manifest(row.run)["status"] == "finished"
        assert json.loads((Path(row.run) / "config.json").read_text())["seed"] == row.seed
    plan = read_plan(tmp_path / "s")
    assert [t["name"] for t in plan["trials"]] == ["seed0", "seed1"] and plan["spec"]["preset"] == "tiny"
    stamps = {r: (Path(r) / "manifest.json").stat().st_mtime_ns for r in table["run"]}
    again = experiment.sweep(spec(tmp_path), progress=False)
    assert set(again["status"]) == {"finished"}
    assert {r: (Path(r) / "manifest.json").stat().st_mtime_ns for r in again["run"]} == stamps  # nothing rerun


class SigtermAt(Callback):
    """Send this process SIGTERM after `step` updates: the run stops gracefully with a resume point."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, state) -> None:
        if state.step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def test_interrupted_trial_resumed_exactly(tmp_path, local_ray):
    planned = experiment.plan_sweep(spec(tmp_path))
    stopped = planned.trials[0]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the sweep's trials: exact resume needs the same thread count
    try:
        with pytest.raises(Stopped):
            experiment.train(stopped.config, stopped.out, progress=False, callbacks=[SigtermAt(8)])
    finally:
        torch.set_num_threads(threads)
    assert manifest(stopped.out)["status"] == "stopped"
    status = experiment.sweep(spec(tmp_path), progress=False)
    assert set(status["status"]) == {"finished"}
    reference = experiment.sweep(spec(tmp_path, name="ref"), progress=False)  # the same points, uninterrupted
    resumed = pd.read_csv(Path(stopped.out) / "metrics.csv")
    whole = pd.read_csv(Path(reference["run"][0]) / "metrics.csv")
    assert len(resumed) == len(whole) > 2
    pd.testing.assert_frame_equal(resumed, whole)


def test_failure_reported_and_retried_on_request(tmp_path, local_ray):
    # model.n_ctx = 8 is a valid config, but shorter than the longest biography: the trial fails at set-up
    bad = spec(tmp_path, cases=[{"name": "ok"}, {"name": "short", "model.n_ctx": 8}], grid={"seed": [0]})
    table = experiment.sweep(bad, progress=False).set_index("trial")
    assert table.loc["ok-seed0", "status"] == "finished"
    assert table.loc["short-seed0", "status"] == "failed"
    assert "model.n_ctx=8 is shorter than the longest biography" in table.loc["short-seed0", "error"]
    record = tmp_path / "s" / "failures" / "short-seed0.json"
    assert json.loads(record.read_text())["attempts"] == 1
    experiment.sweep(bad, progress=False)  # failed trials are not retried unless asked
    assert json.loads(record.read_text())["attempts"] == 1
    again = experiment.sweep(bad, retry_failed=True, progress=False).set_index("trial")
    assert json.loads(record.read_text())["attempts"] == 2 and again.loc["short-seed0", "status"] == "failed"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"grid": {"data.n_individuals": [64, 0]}}, r"point n_individuals0: data\.n_individuals=0 is out of range"),
        # typed values from the spec, validated by the config: the message names the path, not a --set flag
        ({"grid": {"train.lr": [1e-3, "fast"]}}, r"point lrfast: train\.lr='fast' is out of range: allowed a number"),
        ({"grid": {"model.widht": [1]}}, r"model\.widht: unknown field"),
        ({"set": {"train.steps": 20, "patch.mix": 0.5}}, r"patch is not set in this config"),
    ],
)
def test_bad_spec_refused_before_any_trial(tmp_path, change, message):
    bad = spec(tmp_path) | change
    with pytest.raises(ValueError, match=message):
        experiment.sweep(bad, progress=False)
    assert not (tmp_path / "s").exists()  # not one trial started, not even the valid points


@pytest.mark.parametrize("resources, field", [({"gpus": 16}, "resources.gpus=16"), ({"cpus": 64}, "resources.cpus=64")])
def test_resources_the_cluster_lacks_are_refused_before_anything_is_written(tmp_path, local_ray, resources, field):
    with pytest.raises(ValueError, match=f"{field} per trial, but the Ray cluster has"):
        experiment.sweep(spec(tmp_path, resources=resources), progress=False)
    assert not (tmp_path / "s").exists()


def test_existing_run_with_another_config_refused(tmp_path, local_ray):
    experiment.sweep(spec(tmp_path), progress=False)
    changed = spec(tmp_path) | {"set": {"train.steps": STEPS, "train.lr": 1e-3}}
    with pytest.raises(ValueError, match="point seed0: .* already holds a run with another config"):
        experiment.sweep(changed, progress=False)
    longer = spec(tmp_path) | {"set": {"train.steps": STEPS + 1}}  # the same run, longer: an extension, refused for
    with pytest.raises(ValueError, match=r"point seed0: train\.schedule='cosine' is out of range: allowed constant"):
        experiment.sweep(longer, progress=False)  # the preset's cosine schedule


def test_cli_and_api_give_the_same_run_directories(tmp_path, local_ray):
    toml = tmp_path / "s.toml"
    toml.write_text(
        f'name = "cli"\npreset = "tiny"\nout = "{tmp_path / "cli"}"\n[set]\n"train.steps" = {STEPS}\n'
        "[grid]\nseed = [0, 1]\n"
    )
    before = ray_pids()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "sweep", str(toml), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "seed0" in done.stdout and "finished" in done.stdout
    assert "CPU-hours (2 of 2 trials started" in done.stdout  # the sweep's cost, printed
    assert not wait_gone(ray_pids() - before), "the CLI's Ray outlived it"
    api = experiment.sweep(spec(tmp_path, name="api"), progress=False)
    for name in ("seed0", "seed1"):
        cli_run, api_run = tmp_path / "cli" / name, Path(api.set_index("trial").loc[name, "run"])
        assert (cli_run / "config.json").read_text() == (api_run / "config.json").read_text()
        assert (cli_run / "metrics.csv").read_text() == (api_run / "metrics.csv").read_text()
        weights = [{s: c["sha256"] for s, c in manifest(r)["checkpoints"].items()} for r in (cli_run, api_run)]
        assert weights[0] == weights[1] and len(weights[0]) == 5  # the same weights at every checkpoint


@pytest.mark.parametrize("gpus,capped", [(0.25, 0.25), (0.5, 0.5), (1.0, None), (0.0, None)])
def test_a_trial_sharing_a_gpu_caps_its_memory_at_its_fraction(tmp_path, monkeypatch, gpus, capped):
    """Issue 24 item 5: Ray sets only CUDA_VISIBLE_DEVICES; the trial itself caps its allocator."""
    from workbench.sweeps.engine import execute

    caps, seen = [], []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda f, device=None: caps.append((f, device)))
    status = execute(
        lambda config, out, progress: seen.append(out),
        None,
        str(tmp_path / "r"),
        str(tmp_path / "failure.json"),
        torch.get_num_threads(),
        gpus,
    )
    assert status == ("finished", "") and seen == [str(tmp_path / "r")]
    assert caps == ([] if capped is None else [(capped, 0)])
