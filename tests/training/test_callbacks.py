"""Checkpoints (issue 24 item 2): optimizer state only where configured, the hash computed while writing,
writes in the background; resume stays exact."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from interrupts import KillAt

from workbench.atomic import sha256
from workbench.config import preset
from workbench.experiment import resume, train
from workbench.run import load_run
from workbench.training import callbacks
from workbench.training.checkpoint import save_tensors
from workbench.training.rundir import RunDir


@pytest.fixture
def written(monkeypatch):
    """The names of the files the Checkpointer writes, in order."""
    names, real = [], callbacks.save_tensors

    def recording(path, *args, **kwargs):
        names.append(path.name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(callbacks, "save_tensors", recording)
    return names


@pytest.mark.parametrize(
    "every,with_optimizer", [(1, [0, 10, 20, 30, 40]), (2, [0, 20, 40]), (3, [0, 30, 40]), (0, [40])]
)
def test_optimizer_state_is_written_only_where_configured(tmp_path, written, every, with_optimizer):
    train(preset("tiny", train={"optimizer_every": every}), tmp_path / "r", progress=False)
    assert sorted(int(n[5:11]) for n in written if n.endswith(".optim.safetensors")) == with_optimizer
    assert len([n for n in written if not n.endswith(".optim.safetensors")]) == 5  # weights at every checkpoint
    m = RunDir(tmp_path / "r").manifest()
    assert [s for s, e in m["checkpoints"].items() if e["optimizer"]] == ["40"]  # the newest one kept
    assert sorted(p.name for p in (tmp_path / "r").glob("*.optim.safetensors")) == ["step_000040.optim.safetensors"]


def test_a_killed_run_resumes_exactly_from_the_newest_checkpoint_with_optimizer_state(tiny_run, tmp_path):
    path = tmp_path / "killed"
    cfg = preset("tiny", train={"optimizer_every": 2})  # optimizer state at 0, 20, 40
    with pytest.raises(KeyboardInterrupt):
        train(cfg, path, progress=False, callbacks=[KillAt(35)])
    assert load_run(path).checkpoint_steps == [0, 10, 20, 30] and RunDir(path).resume_point()["step"] == 20
    resume(path, progress=False)
    pd.testing.assert_frame_equal(load_run(path).metrics, tiny_run.metrics, check_exact=True)  # the same numbers
    batch = tiny_run.data.eval_batch("seen", 4)
    assert torch.equal(load_run(path).load_model(40)(batch.tokens), tiny_run.load_model(40)(batch.tokens))


def test_the_hash_computed_while_writing_is_the_files_and_safetensors_reads_it(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    tensors = {
        "a": torch.randn(300, 7),
        "b": torch.arange(10),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 4),
        "bf16": torch.ones(5, dtype=torch.bfloat16),
        "mask": torch.tensor([True, False]),
        "t": torch.randn(3, 4).t(),
    }
    file_sha256 = save_tensors(tmp_path / "t.safetensors", tensors, {"k": "v"})
    assert file_sha256 == sha256(tmp_path / "t.safetensors")
    assert not list(tmp_path.glob("*.tmp"))
    back = load_file(tmp_path / "t.safetensors")
    assert back.keys() == tensors.keys() and all(torch.equal(back[k], tensors[k]) for k in tensors)
    with safe_open(str(tmp_path / "t.safetensors"), "pt") as f:
        assert f.metadata() == {"k": "v"}


def test_a_background_write_error_fails_the_run_and_names_the_file(tmp_path, monkeypatch):
    real = callbacks.save_tensors

    def failing(path, *args, **kwargs):
        if path.name == "step_000010.safetensors":
            raise OSError(28, "No space left on device", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(callbacks, "save_tensors", failing)
    with pytest.raises(OSError, match="step_000010.safetensors"):
        train(preset("tiny"), tmp_path / "r", progress=False)
    run = load_run(tmp_path / "r")
    assert run.status == "failed" and run.checkpoint_steps == [0]  # the step-0 checkpoint was completed


def test_foreground_and_background_checkpoints_write_the_same_files(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setattr(callbacks.Checkpointer.__init__, "__defaults__", (1, False))  # background=False
    train(preset("tiny"), tmp_path / "r", progress=False)
    a, b = RunDir(tmp_path / "r").manifest(), tiny_run.dir.manifest()
    hashes = [{s: e["sha256"] for s, e in m["checkpoints"].items()} for m in (a, b)]
    assert hashes[0] == hashes[1]
