"""Fine-tuning from tiny_run@40 on new individuals, with and without replay; bad input fails early."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from interrupts import KillAt

from workbench.config import FinetuneConfig, preset
from workbench.data.population import make_population
from workbench.experiment import finetune, resume, train
from workbench.finetuning import finetune_config
from workbench.metrics import evaluate, summarize
from workbench.run import load_run

STEPS, EVAL_EVERY, LR = 16, 4, 3e-3  # short runs; a larger lr than the study's so 16 steps move the model


def _ft(tiny_run, out, replay_weight, **kw):
    return finetune(
        tiny_run.path, 40, 16, replay_weight, out=out, progress=False, steps=STEPS, eval_every=EVAL_EVERY, lr=LR, **kw
    )


@pytest.fixture(scope="module")
def ft_runs(tiny_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    return {w: _ft(tiny_run, root / f"replay{w}", w) for w in (0.0, 1.0)}


def test_config_is_derived_from_the_base_run(tiny_run):
    cfg = finetune_config(tiny_run.path, 40, 48, replay_weight=0.5)
    base = tiny_run.config
    assert cfg.finetune == FinetuneConfig(str(tiny_run.path), 40, 48, 0.5)
    assert (cfg.model, cfg.seed, cfg.train.batch_size, cfg.train.eval_size) == (
        base.model,
        base.seed,
        base.train.batch_size,
        base.train.eval_size,
    )
    assert cfg.data.n_finetune == 48 > base.data.n_finetune
    assert cfg.train.schedule == "constant" and cfg.train.lr == 3e-5
    assert cfg.train.steps == round(0.1 * base.train.steps)
    assert cfg.train.checkpoint_steps[0] == 0 and cfg.train.checkpoint_steps[-1] == cfg.train.steps
    assert cfg.preset == "tiny-finetune"
    long = finetune_config(tiny_run.path, 40, 8, steps=4000)
    assert long.data.n_finetune == base.data.n_finetune  # never shrinks
    assert 35 <= 4000 // long.train.eval_every <= 45
    assert len(long.train.checkpoint_steps) == 21
    assert np.ptp(np.diff(long.train.checkpoint_steps)) == 0  # evenly spaced
    for c in (cfg, long):  # every checkpoint is an evaluation step (a metrics row for each)
        assert all(s % c.train.eval_every == 0 or s == c.train.steps for s in c.train.checkpoint_steps)


def test_population_is_prefix_stable(tiny_run):
    cfg = finetune_config(tiny_run.path, 40, 200)
    ft, base = make_population(cfg.data, cfg.seed), make_population(tiny_run.config.data, tiny_run.config.seed)
    assert ft.fingerprint("seen") == tiny_run.manifest["population_fingerprint"]
    assert ft.fingerprint("heldout") == base.fingerprint("heldout")
    assert len(ft.new) == 200
    old = {tuple(n) for n in ft.names[: ft.new.start]}
    assert not old & {tuple(n) for n in ft.names[ft.new.start :]}  # new individuals are new


def test_runs_record_config_and_evaluate_the_new_individuals(ft_runs, tiny_run):
    for w, run in ft_runs.items():
        assert run.status == "finished"
        assert run.config.finetune == FinetuneConfig(str(tiny_run.path), 40, 16, w)
        assert load_run(run.path).config == run.config
        m = run.metrics
        assert list(m["step"]) == list(range(0, STEPS + 1, EVAL_EVERY))
        for col in (
            "new_attribute_loss",
            "new_attribute_accuracy",
            "new_top_probability",
            "new_entropy",
            "heldout_attribute_loss",
        ):
            assert m[col].notna().all(), col
        assert (m["lr"] == LR).all()  # constant schedule
        assert m["new_attribute_loss"].iloc[-1] < m["new_attribute_loss"].iloc[0]  # new facts are being learned


def test_step_zero_is_the_base_checkpoint(ft_runs, tiny_run):
    base_model = tiny_run.load_model(40)
    base_row = tiny_run.metrics.set_index("step").loc[40]
    for run in ft_runs.values():
        row = run.metrics.set_index("step").loc[0]
        for col in ("attribute_loss", "attribute_accuracy", "heldout_attribute_loss", "heldout_entropy"):
            assert row[col] == base_row[col], col
        cfg = run.config
        again = summarize(evaluate(base_model, run.data.eval_batch("seen"), cfg.data.attributes), cfg.data.attributes)
        assert row["attribute_accuracy"] == again["attribute_accuracy"]
        assert row["attribute_loss"] == pytest.approx(again["attribute_loss"], rel=1e-6)
        start = run.load_model(0).state_dict()
        assert all(torch.equal(v, start[k]) for k, v in base_model.state_dict().items())
        assert not torch.equal(run.load_model(STEPS).state_dict()["blocks.0.mlp.W_in"], start["blocks.0.mlp.W_in"])


def test_replay_mixes_pretraining_individuals(ft_runs):
    for w, run in ft_runs.items():
        population = run.data.population
        ids = np.concatenate([run.data.train_batch(s).individuals.numpy() for s in range(STEPS)])
        new = (ids >= population.new.start) & (ids < population.new.start + 16)
        old = ids < population.seen.stop
        assert (new | old).all()
        assert old.any() == (w > 0)
        assert new.any()


def test_resume_equals_uninterrupted(ft_runs, tiny_run, tmp_path):
    path = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        _ft(tiny_run, path, 1.0, callbacks=[KillAt(10)])
    assert load_run(path).status == "failed"
    resume(path, progress=False)
    resumed = load_run(path)
    assert resumed.status == "finished"
    pd.testing.assert_frame_equal(resumed.metrics, ft_runs[1.0].metrics, check_exact=True)


def test_attention_stability_is_measured_from_the_base_checkpoint(ft_runs, tiny_run):
    from workbench.stability import attention_stability

    run = ft_runs[0.0]
    df = attention_stability(run, size=8, progress=False)
    assert sorted(df["step"].unique()) == run.checkpoint_steps
    per_step = df.groupby("step")["distance"].mean()
    assert per_step.loc[0] == 0.0 and per_step.loc[STEPS] > 0.0
    assert (run.path / "analysis").is_dir()


def test_default_out_is_next_to_the_base(tiny_run_dir):
    from workbench.naming import default_run_path

    config = finetune_config(tiny_run_dir, 40, 8, 1.0)
    assert default_run_path(config) == Path(tiny_run_dir).with_name(f"{Path(tiny_run_dir).name}-ft8-replay1")


# -- bad input: ValueError naming the field, before any training, no run directory left --------------


@pytest.fixture(scope="module")
def other_seed_run(tmp_path_factory):
    """A tiny run of another population (seed 1), one step."""
    path = tmp_path_factory.mktemp("other") / "seed1"
    train(preset("tiny", train={"steps": 1, "checkpoint_steps": (0, 1)}).replace(seed=1), path, progress=False)
    return path


def _base_cfg(tiny_run):
    return finetune_config(tiny_run.path, 40, 8, steps=2)


@pytest.mark.parametrize(
    "case,match",
    [
        ("unknown base run", "finetune.base_run"),
        ("no checkpoint at base step", "finetune.base_step=35"),
        ("replay weight < 0", "finetune.replay_weight"),
        ("eval_every = 0", "eval_every=0"),
        ("another seed", "another population"),
    ],
)
def test_bad_finetune_arguments(case, match, tiny_run, tmp_path):
    out = tmp_path / "out"
    kw = {
        "unknown base run": dict(base_run=tmp_path / "nope"),
        "no checkpoint at base step": dict(base_step=35),
        "replay weight < 0": dict(replay_weight=-0.5),
        "another seed": dict(seed=1),
        "eval_every = 0": dict(eval_every=0),
    }[case]
    args = dict(base_run=tiny_run.path, base_step=40, n_new=8, replay_weight=0.0, steps=2) | kw
    with pytest.raises(ValueError, match=match):
        finetune(**args, out=out, progress=False)
    assert not out.exists()


@pytest.mark.parametrize(
    "case,match",
    [
        ("base step without checkpoint", "finetune.base_step=35"),
        ("n_new > n_finetune", "finetune.n_new"),
        ("another population (n_individuals)", "another population"),
        ("another population (seed)", "another population"),
        ("another architecture", "architecture"),
        ("another tokenizer", "another tokenizer"),
        ("another held-out set", "data.n_heldout"),
        ("base run is not a run", "not a run directory"),
    ],
)
def test_bad_configs_fail_before_training(case, match, tiny_run, other_seed_run, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=match):
        cfg = _base_cfg(tiny_run)
        cfg = {
            "base step without checkpoint": lambda: cfg.replace(finetune={"base_step": 35}),
            "n_new > n_finetune": lambda: cfg.replace(finetune={"n_new": cfg.data.n_finetune + 1}),
            "another population (n_individuals)": lambda: cfg.replace(data={"n_individuals": 60}),
            "another population (seed)": lambda: cfg.replace(
                finetune={"base_run": str(other_seed_run), "base_step": 1}
            ),
            "another architecture": lambda: cfg.replace(model={"d_mlp": 32}),
            "another tokenizer": lambda: cfg.replace(data={"vocab_size": 1024}),
            "another held-out set": lambda: cfg.replace(data={"n_heldout": 16}),
            "base run is not a run": lambda: cfg.replace(finetune={"base_run": str(tmp_path)}),
        }[case]()
        train(cfg, out, progress=False)
    assert not out.exists()


def test_tampered_base_tokenizer_fails_before_training(tiny_run, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(tiny_run.path, base)
    cfg = finetune_config(base, 40, 8, steps=2)
    tok = base / "tokenizer.json"
    tok.write_text(tok.read_text().replace('"<|bos|>"', '"<|BOS|>"'))
    with pytest.raises(ValueError, match="tokenizer"):
        train(cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
