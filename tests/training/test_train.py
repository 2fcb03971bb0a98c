"""Training end to end on the tiny preset: loss falls, checkpoints, exact resume, bad input."""

import shutil

import pandas as pd
import pytest
import torch
from interrupts import KillAt

from workbench.config import ModelConfig, TrainConfig, preset
from workbench.experiment import resume, train
from workbench.model import build_model
from workbench.run import load_run
from workbench.training.checkpoint import load_weights


def test_tiny_run_loss_falls(tiny_run):
    m = tiny_run.metrics
    assert list(m["step"]) == [0, 10, 20, 30, 40]
    assert m["attribute_loss"].iloc[-1] < m["attribute_loss"].iloc[0]
    assert m["training_loss"].iloc[-1] < m["training_loss"].iloc[1]
    assert (m["no_knowledge_baseline"] == tiny_run.config.data.no_knowledge_baseline).all()
    for col in (
        "attribute_accuracy",
        "heldout_attribute_loss",
        "heldout_attribute_accuracy",
        "heldout_top_probability",
        "heldout_entropy",
    ):
        assert col in m.columns
    assert tiny_run.status == "finished"
    assert tiny_run.checkpoint_steps == [0, 10, 20, 30, 40]


@pytest.mark.slow
def test_every_way_to_train_returns_the_loaded_run(tiny_run_dir, tmp_path):
    """train, resume, train_or_resume and finetune all return the loaded `Run` (not a RunDir)."""
    from workbench.experiment import finetune, train_or_resume
    from workbench.run import Run

    short = preset("tiny", train={"steps": 2, "checkpoint_steps": (0, 2), "eval_every": 2})
    runs = [
        train(short, tmp_path / "short", progress=False),
        resume(tmp_path / "short", progress=False),
        train_or_resume(short, tmp_path / "short", progress=False),
        finetune(tiny_run_dir, 40, n_new=8, steps=2, out=tmp_path / "ft", progress=False),
    ]
    assert [type(r) for r in runs] == [Run] * 4
    assert [r.path for r in runs] == [tmp_path / "short"] * 3 + [tmp_path / "ft"]
    assert runs[0].metrics["step"].tolist() == [0, 2] and runs[3].config.finetune.n_new == 8


def test_manifest_records_what_a_bit_identical_rerun_needs(tiny_run):
    m = tiny_run.dir.manifest()
    assert m["seed"] == tiny_run.config.seed and m["config_sha256"]
    assert m["versions"]["torch"] == torch.__version__
    assert int(m["versions"]["torch_threads"]) == torch.get_num_threads()  # conftest pins 1 thread


def test_checkpoint_round_trip_gives_identical_logits(tiny_run):
    batch = tiny_run.data.eval_batch("seen", 8)
    a = tiny_run.load_model(40)(batch.tokens)
    b = tiny_run.load_model(40)(batch.tokens)
    c = tiny_run.load_model(0)(batch.tokens)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    _, cache = tiny_run.load_model(40).run_with_cache(batch.tokens)
    assert cache["blocks.0.attn.hook_pattern"].shape[:2] == (8, tiny_run.config.model.n_heads)


def test_resume_equals_uninterrupted(tiny_run, tmp_path):
    path = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        train(preset("tiny"), path, progress=False, callbacks=[KillAt(25)])
    assert load_run(path).status == "failed"
    assert load_run(path).metrics["step"].max() == 20
    resume(path, progress=False)
    resumed = load_run(path)
    assert resumed.status == "finished"
    pd.testing.assert_frame_equal(resumed.metrics, tiny_run.metrics, check_exact=True)
    batch = tiny_run.data.eval_batch("seen", 4)
    assert torch.equal(resumed.load_model(40)(batch.tokens), tiny_run.load_model(40)(batch.tokens))


def _copy(run, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(run.path, dst)
    return dst


def test_truncated_checkpoint_names_the_file(tiny_run, tmp_path):
    dst = _copy(tiny_run, tmp_path)
    f = dst / "step_000040.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(ValueError, match="step_000040.safetensors"):
        load_run(dst).load_model(40)


def test_corrupted_checkpoint_names_the_file(tiny_run, tmp_path):
    dst = _copy(tiny_run, tmp_path)
    f = dst / "step_000030.safetensors"
    data = bytearray(f.read_bytes())
    data[-10:] = b"\x00" * 10
    f.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="step_000030.safetensors"):
        load_run(dst).load_model(30)
    # without the manifest's hash, a garbage file still fails with the file's name
    f.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="step_000030.safetensors"):
        load_weights(build_model(tiny_run.config.model, tiny_run.tokenizer.vocab_size, 190, 0), f)


def test_mismatched_config_is_a_clear_error(tiny_run):
    other = ModelConfig(n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=32)
    model = build_model(other, tiny_run.tokenizer.vocab_size, 190, 0)
    with pytest.raises(ValueError, match="does not match the model's config"):
        load_weights(model, tiny_run.path / "step_000040.safetensors")


def test_mismatched_tokenizer_is_a_clear_error(tiny_run, tmp_path):
    dst = _copy(tiny_run, tmp_path)
    tok = dst / "tokenizer.json"
    tok.write_text(tok.read_text().replace('"<|bos|>"', '"<|BOS|>"'))
    with pytest.raises(ValueError, match="tokenizer"):
        load_run(dst).load_model(40)


@pytest.mark.parametrize(
    "make",
    [
        lambda: TrainConfig(lr=0.0),
        lambda: TrainConfig(lr=-1e-3),
        lambda: TrainConfig(batch_size=0),
        lambda: TrainConfig(steps=0),
        lambda: preset("no-such-preset"),
    ],
)
def test_bad_configs_fail_on_construction(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize(
    "field,make",
    [
        ("train.lr", lambda: TrainConfig(lr=0.0)),
        ("train.batch_size", lambda: TrainConfig(batch_size=0)),
        ("train.steps", lambda: TrainConfig(steps=0)),
        ("preset", lambda: preset("no-such-preset")),
    ],
)
def test_bad_config_errors_name_the_field(field, make):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        make()


def test_short_context_fails_before_any_compute(tmp_path):
    cfg = preset("tiny", model={"n_ctx": 10})
    with pytest.raises(ValueError, match="n_ctx=10 is shorter than the longest biography"):
        train(cfg, tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_existing_run_directory_is_not_overwritten(tiny_run):
    before = (tiny_run.path / "metrics.csv").read_bytes()
    with pytest.raises(ValueError, match="already holds a run"):
        train(preset("tiny"), tiny_run.path, progress=False)
    assert (tiny_run.path / "metrics.csv").read_bytes() == before


def test_resume_from_a_checkpoint_between_evaluations_is_exact(tmp_path):
    cfg = preset("tiny", train={"checkpoint_steps": (0, 13, 27, 40)})  # 13, 27: not evaluation steps
    train(cfg, tmp_path / "a", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "b", progress=False, callbacks=[KillAt(33)])
    resume(tmp_path / "b", progress=False)
    pd.testing.assert_frame_equal(load_run(tmp_path / "b").metrics, load_run(tmp_path / "a").metrics, check_exact=True)


def test_missing_feature_run_names_the_field(tmp_path):
    from workbench.config import PatchConfig

    cfg = preset("tiny").replace(patch=PatchConfig(reference_run=str(tmp_path / "nope"), reference_step=0))
    with pytest.raises(ValueError, match="patch.reference_run"):
        train(cfg, tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_old_run_directories_stay_readable(tiny_run, tmp_path):
    """Runs written before the vocabulary was unified logged `train_loss`: read as `training_loss`."""
    dst = _copy(tiny_run, tmp_path)
    old = tiny_run.metrics.rename(columns={"training_loss": "train_loss"})
    old.to_csv(dst / "metrics.csv", index=False)
    pd.testing.assert_frame_equal(load_run(dst).metrics, tiny_run.metrics, check_exact=True)
