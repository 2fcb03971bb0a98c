"""Interruptions: graceful stops (SIGINT / SIGTERM), kill -9 at any moment, one writer per run.

Exactness is checked the sceptical way: the interrupted-and-resumed run's metrics.csv (bytes) and
final weights (tensors) must equal those of the same run trained without interruption.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from workbench.config import preset
from workbench.experiment import resume, train
from workbench.run import load_run
from workbench.training.loop import Callback
from workbench.training.rundir import RunDir
from workbench.training.stopping import Stopped

pytestmark = pytest.mark.slow  # subprocess runs of 240 steps

# A tiny run long enough to be interrupted mid-training, with frequent evaluations and checkpoints.
LONG = ["--preset", "tiny", "--set", "train.steps=240", "--set", "train.n_checkpoints=12", "--quiet"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # one thread: bit-identical reruns


def _cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "workbench", *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def _finish(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args], env=ENV, capture_output=True, text=True, timeout=timeout
    )


def _same_run(a: Path, b: Path) -> None:
    assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()
    assert load_run(a).checkpoint_steps == load_run(b).checkpoint_steps
    last = load_run(a).checkpoint_steps[-1]
    wa, wb = load_file(RunDir(a).weights_path(last)), load_file(RunDir(b).weights_path(last))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("interrupt") / "uninterrupted"
    t0 = time.monotonic()
    done = _finish("train", *LONG, "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out, time.monotonic() - t0


def _wait_for_step(path: Path, step: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            pytest.fail(f"training ended early: {proc.stderr.read()}")
        try:
            if (path / "metrics.csv").is_file() and load_run(path).metrics["step"].max() >= step:
                return
        except (ValueError, KeyError, pd.errors.EmptyDataError):
            pass
        time.sleep(0.05)
    proc.kill()
    pytest.fail("training did not reach the step in time")


def test_sigterm_stops_gracefully_and_resume_is_exact(uninterrupted, tmp_path):
    out = tmp_path / "run"
    proc = _cli("train", *LONG, "--out", str(out))
    _wait_for_step(out, 30, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert f"workbench train --resume {out}" in err
    assert load_run(out).status == "stopped"
    done = _finish("train", "--resume", str(out))
    assert done.returncode == 0, done.stderr
    assert load_run(out).status == "finished"
    _same_run(out, uninterrupted[0])


def test_kill9_at_random_moments_then_resume_is_exact(uninterrupted, tmp_path):
    """Five seeded random kills across a run's life (start-up, creation, training, checkpoint writes)."""
    reference, duration = uninterrupted
    out, rng = tmp_path / "run", random.Random(0)
    for _ in range(5):
        args = ("train", "--resume", str(out)) if RunDir(out).exists() else ("train", *LONG, "--out", str(out))
        proc = _cli(*args)
        time.sleep(rng.uniform(0.2, 1.0) * duration)
        proc.kill()
        proc.communicate()
    args = ("train", "--resume", str(out)) if RunDir(out).exists() else ("train", *LONG, "--out", str(out))
    done = _finish(*args)
    assert done.returncode == 0, done.stderr
    _same_run(out, reference)


def _dying_cli(module: str, function: str, kill_if: str, after: bool) -> str:
    """A `python -c` program: the CLI with `module.function` patched to SIGKILL the process when its
    first argument (a path) satisfies `kill_if` (an expression in `path`), before or after the real call."""
    return f"""
import os, signal, sys
import {module} as target
real = target.{function}
def dying(*args, **kwargs):
    path = str(args[0])
    if not {after} and {kill_if}:
        os.kill(os.getpid(), signal.SIGKILL)
    out = real(*args, **kwargs)
    if {after} and {kill_if}:
        os.kill(os.getpid(), signal.SIGKILL)
    return out
target.{function} = dying
from workbench.cli import main
sys.exit(main(sys.argv[1:]))
"""


# after config.json and tokenizer.json are written, before the manifest
_KILL_IN_CREATION = _dying_cli(
    "workbench.training.rundir", "atomic_write_json", "path.endswith('manifest.json')", after=False
)


def test_kill9_during_directory_creation_leaves_a_replaceable_directory(uninterrupted, tmp_path):
    out = tmp_path / "run"
    died = subprocess.run(
        [sys.executable, "-c", _KILL_IN_CREATION, "train", *LONG, "--out", str(out)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert died.returncode == -signal.SIGKILL
    assert (out / "config.json").is_file() and not (out / "manifest.json").exists()
    refused = _finish("train", "--resume", str(out))
    assert refused.returncode == 2 and "incomplete run" in refused.stderr and "Traceback" not in refused.stderr
    done = _finish("train", *LONG, "--out", str(out))
    assert done.returncode == 0, done.stderr
    _same_run(out, uninterrupted[0])


class _Signal(Callback):
    def __init__(self, at: int, signum: int):
        self.at, self.signum = at, signum

    def on_step_end(self, state):
        if state.step == self.at:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_graceful_stop_in_process_keeps_the_schedule_and_resumes_exactly(tiny_run, tmp_path, signum):
    out = tmp_path / "run"
    with pytest.raises(Stopped) as stopped:
        train(preset("tiny"), out, progress=False, callbacks=[_Signal(25, signum)])
    assert stopped.value.step == 25 and stopped.value.signum == signum
    run = load_run(out)
    assert run.status == "stopped" and run.checkpoint_steps == [0, 10, 20]  # 25 is a resume point, not a checkpoint
    assert RunDir(out).resume_point()["step"] == 25
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    resume(out, progress=False)
    assert RunDir(out).manifest()["resume"] is None and not (out / "resume.safetensors").exists()
    _same_run(out, tiny_run.path)


def test_a_second_writer_is_refused(tiny_run, tmp_path):
    out = tmp_path / "run"
    with RunDir(out).lock():
        with pytest.raises(ValueError, match="being written by another process"):
            train(preset("tiny"), out, progress=False)
    assert not RunDir(out).exists()
    train(preset("tiny"), out, progress=False)  # the lock is released: now it trains
    with RunDir(out).lock():
        with pytest.raises(ValueError, match="being written by another process"):
            resume(out, progress=False)


def test_a_second_process_is_refused_while_a_run_trains(tmp_path):
    out = tmp_path / "run"
    proc = _cli("train", *LONG, "--set", "train.steps=20000", "--out", str(out))  # still training when checked
    _wait_for_step(out, 10, proc)
    second = _finish("train", "--resume", str(out), timeout=120)
    proc.kill()
    proc.communicate()
    assert second.returncode == 2 and "being written by another process" in second.stderr
    assert "Traceback" not in second.stderr
    listed = _finish("runs", "--root", str(tmp_path), "--json")
    assert '"status":"interrupted"' in listed.stdout.replace(" ", "")  # killed: nobody holds the lock


# weights written, optimizer and manifest not yet
_KILL_IN_CHECKPOINT = _dying_cli(
    "workbench.training.callbacks", "save_tensors", "path.endswith('step_000120.safetensors')", after=True
)


def test_kill9_while_a_checkpoint_is_written_then_resume_is_exact(uninterrupted, tmp_path):
    out = tmp_path / "run"
    died = subprocess.run(
        [sys.executable, "-c", _KILL_IN_CHECKPOINT, "train", *LONG, "--out", str(out)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert died.returncode == -signal.SIGKILL
    assert 120 not in load_run(out).checkpoint_steps  # the manifest never pointed at the half-made checkpoint
    done = _finish("train", "--resume", str(out))
    assert done.returncode == 0, done.stderr
    _same_run(out, uninterrupted[0])
