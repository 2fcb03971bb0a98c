"""over_checkpoints: one cache per run and computation, keyed by step, weights hash and params."""

import json

import numpy as np
import pandas as pd
import pytest

from workbench.over_checkpoints import Models, over_checkpoints


class Counting:
    """A fake computation (no model needed) that records the steps it computes; `fail_at` raises there."""

    def __init__(self, fail_at: int | None = None):
        self.steps: list[int] = []
        self.fail_at = fail_at

    def __call__(self, step, models) -> pd.DataFrame:
        if step == self.fail_at:
            raise RuntimeError(f"interrupted at step {step}")
        self.steps.append(step)
        return pd.DataFrame(
            {
                "layer": [0, 1],
                "value": [step / 3, 0.1 + 0.2 * step],
                "label": ["a", "b"],
                "flag": [True, False],
                "maybe": [np.nan, step / 7],
            }
        )


def cache_path(run, name="fake"):
    return run.path / "analysis" / f"{name}.csv"


def test_second_call_computes_nothing_and_returns_the_same_frame(tiny_run_copy):
    run, compute = tiny_run_copy, Counting()
    steps = run.checkpoint_steps
    df = over_checkpoints(run, "fake", compute, params={"size": 8}, progress=False)
    assert compute.steps == steps
    assert list(df.columns) == ["step", "layer", "value", "label", "flag", "maybe"]
    assert df["step"].tolist() == [s for s in steps for _ in range(2)] and df["layer"].tolist() == [0, 1] * len(steps)
    assert df["value"].tolist() == [v for s in steps for v in (s / 3, 0.1 + 0.2 * s)]  # exact float round trip
    assert df["flag"].dtype == bool and df["maybe"].isna().sum() == len(steps)
    cached = pd.read_csv(cache_path(run), dtype={"weights_sha256": str})
    assert list(cached.columns) == ["step", "weights_sha256", "params", "layer", "value", "label", "flag", "maybe"]
    assert set(cached["params"]) == {'{"size":8}'}
    assert (cached["weights_sha256"] == cached["step"].map(lambda s: run.manifest_entry(s)["sha256"])).all()

    again = Counting()
    pd.testing.assert_frame_equal(over_checkpoints(run, "fake", again, params={"size": 8}, progress=False), df)
    subset = over_checkpoints(
        run, "fake", again, steps=[steps[-1], steps[0], steps[0]], params={"size": 8}, progress=False
    )
    assert again.steps == []
    pd.testing.assert_frame_equal(subset, df[df["step"].isin([steps[0], steps[-1]])].reset_index(drop=True))


def test_new_params_or_a_changed_checkpoint_recompute_only_what_changed(tiny_run_copy):
    run = tiny_run_copy
    steps = run.checkpoint_steps
    over_checkpoints(run, "fake", Counting(), params={"size": 8, "layers": [0, 1]}, progress=False)
    other = Counting()
    over_checkpoints(run, "fake", other, steps=steps[:2], params={"size": 4, "layers": (0, 1)}, progress=False)
    assert other.steps == steps[:2]
    same = Counting()  # key order and tuple vs list do not matter: the params are canonical JSON
    over_checkpoints(run, "fake", same, params={"layers": (0, 1), "size": np.int64(8)}, progress=False)
    over_checkpoints(run, "fake", same, steps=steps[:2], params={"size": 4, "layers": [0, 1]}, progress=False)
    assert same.steps == []

    manifest = json.loads((run.path / "manifest.json").read_text())
    manifest["checkpoints"][str(steps[2])]["sha256"] = "0" * 64  # as if step 20 were retrained
    (run.path / "manifest.json").write_text(json.dumps(manifest))
    retrained = Counting()
    df = over_checkpoints(run, "fake", retrained, params={"size": 8, "layers": [0, 1]}, progress=False)
    assert retrained.steps == [steps[2]] and sorted(df["step"].unique()) == steps
    cached = pd.read_csv(cache_path(run), dtype={"weights_sha256": str})
    assert len(cached) == 2 * (len(steps) + 2)  # the old rows of step 20 were replaced, not kept
    assert (cached[cached["step"] == steps[2]]["weights_sha256"] == "0" * 64).all()


@pytest.mark.parametrize("steps", [[7], [], [0, 10**6]])
def test_bad_steps_raise_naming_steps_and_the_allowed_ones(tiny_run_copy, steps):
    run, compute = tiny_run_copy, Counting()
    with pytest.raises(ValueError, match=r"steps=.*allowed.*\[0, 10, 20, 30, 40\]"):
        over_checkpoints(run, "fake", compute, steps=steps, progress=False)
    assert compute.steps == [] and not cache_path(run).exists()


@pytest.mark.parametrize(
    "text", ['step,weights_sha256,params,layer\n1,"unterminated\n', "a,b\n1,2\n", "\x00\xff garbage"]
)
def test_an_unreadable_cache_warns_and_is_recomputed(tiny_run_copy, text):
    run, compute = tiny_run_copy, Counting()
    cache_path(run).parent.mkdir()
    cache_path(run).write_text(text)
    with pytest.warns(UserWarning, match="cache"):
        df = over_checkpoints(run, "fake", compute, progress=False)
    assert compute.steps == run.checkpoint_steps and len(df) == 2 * len(run.checkpoint_steps)
    again = Counting()
    over_checkpoints(run, "fake", again, progress=False)  # the rewritten cache is readable
    assert again.steps == []


def test_an_interrupted_loop_keeps_the_steps_it_finished(tiny_run_copy):
    run = tiny_run_copy
    steps = run.checkpoint_steps
    with pytest.raises(RuntimeError, match="interrupted"):
        over_checkpoints(run, "fake", Counting(fail_at=steps[2]), progress=False)
    cached = pd.read_csv(cache_path(run))
    assert sorted(cached["step"].unique()) == steps[:2]
    assert not list(cache_path(run).parent.glob("*.tmp"))
    resumed = Counting()
    over_checkpoints(run, "fake", resumed, progress=False)
    assert resumed.steps == steps[2:]


def test_an_unwritable_run_directory_warns_and_still_returns(tiny_run_copy):
    run, compute = tiny_run_copy, Counting()
    (run.path / "analysis").write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="could not write"):
        df = over_checkpoints(run, "fake", compute, progress=False)
    assert compute.steps == run.checkpoint_steps and sorted(df["step"].unique()) == run.checkpoint_steps


def test_compute_must_return_rows_without_key_columns(tiny_run_copy):
    with pytest.raises(ValueError, match="no rows|columns"):
        over_checkpoints(tiny_run_copy, "fake", lambda step, models: pd.DataFrame({"x": []}), progress=False)
    with pytest.raises(ValueError, match="columns"):
        over_checkpoints(tiny_run_copy, "fake", lambda step, models: pd.DataFrame({"step": [step]}), progress=False)


def test_models_loads_each_step_once_and_keeps_the_two_last_used(tiny_run_copy, monkeypatch):
    run = tiny_run_copy
    loaded = []
    monkeypatch.setattr(run, "load_model", lambda step: loaded.append(step) or f"model {step}")
    models = Models(run)
    for step in (10, 0, 20, 0, 30, 0):  # a computation comparing each step with step 0
        assert models(step) == f"model {step}"
    assert loaded == [10, 0, 20, 30]
    models(10)
    assert loaded == [10, 0, 20, 30, 10]  # 10 was dropped: at most two models are kept
