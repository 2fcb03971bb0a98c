import matplotlib.pyplot as plt
import pandas as pd
import pytest

from workbench.probes.toy_memory import ToyMemoryConfig, make_pairs, run_toy_memory
from workbench.viz import plot_toy_memory

SMALL = dict(n_keys=512, n_new=128, d_hidden=128, pretrain_steps=400, finetune_steps=200, batch_size=128, eval_every=50)


@pytest.fixture(scope="module")
def runs() -> dict[str, pd.DataFrame]:
    return {f"replay {w}": run_toy_memory(ToyMemoryConfig(**SMALL, replay_weight=w)) for w in (0.0, 1.0)}


def _final(df: pd.DataFrame, phase: str, column: str) -> float:
    return float(df[df["phase"] == phase][column].iloc[-1])


def test_pretraining_memorises_the_pairs(runs):
    df = runs["replay 0.0"]
    assert _final(df, "pretrain", "old_accuracy") > 0.9
    assert _final(df, "pretrain", "new_accuracy") < 0.3  # new pairs are unseen before fine-tuning


def test_finetuning_without_replay_forgets_old_pairs_and_learns_new_ones(runs):
    df = runs["replay 0.0"]
    ft = df[df["phase"] == "finetune"]
    assert ft["old_accuracy"].iloc[0] == _final(df, "pretrain", "old_accuracy")  # step 0 = pre-trained model
    assert ft["old_accuracy"].iloc[-1] < ft["old_accuracy"].iloc[0] - 0.1
    assert ft["new_accuracy"].iloc[-1] > 0.8


def test_replay_keeps_more_of_the_old_pairs(runs):
    no_replay, replay = runs["replay 0.0"], runs["replay 1.0"]
    assert _final(replay, "finetune", "old_accuracy") > _final(no_replay, "finetune", "old_accuracy") + 0.1


def test_runs_are_deterministic_and_logged_per_eval(runs):
    cfg = ToyMemoryConfig(**SMALL)
    df = run_toy_memory(cfg)
    pd.testing.assert_frame_equal(df, runs["replay 0.0"])
    assert list(df.columns) == ["phase", "step", "old_accuracy", "new_accuracy"]
    assert df[df["phase"] == "pretrain"]["step"].tolist() == list(range(0, 401, 50))


def test_keys_are_unit_norm_and_values_in_range():
    pairs = make_pairs(ToyMemoryConfig(n_keys=64, n_new=16, n_values=7))
    assert pairs.old_keys.shape == (64, 64) and pairs.new_keys.shape == (16, 64)
    assert ((pairs.old_keys.norm(dim=1) - 1).abs() < 1e-5).all()
    assert int(pairs.old_values.max()) < 7 and int(pairs.new_values.min()) >= 0


def test_replay_fraction_follows_the_weights():
    cfg = ToyMemoryConfig(n_keys=900, n_new=100, replay_weight=1.0)
    assert cfg.replay_fraction == pytest.approx(0.9)
    assert ToyMemoryConfig(replay_weight=0.0).replay_fraction == 0.0


@pytest.mark.parametrize(
    "field, value",
    [
        ("n_keys", 0),
        ("n_values", 1),
        ("replay_weight", -0.1),
        ("lr", 0.0),
        ("finetune_lr", float("nan")),
        ("batch_size", 2.5),
        ("pretrain_steps", -1),
        ("seed", True),
    ],
)
def test_bad_config_raises_naming_the_field(field, value):
    # a wrong type (batch_size=2.5) is caught by the test session's runtime type checker first: TypeError
    with pytest.raises((ValueError, TypeError), match=field):
        ToyMemoryConfig(**{field: value})


def test_plot_returns_a_figure(runs):
    fig = plot_toy_memory(runs)
    assert len(fig.axes[0].lines) == 4
    plt.close(fig)
    with pytest.raises(ValueError, match="dfs"):
        plot_toy_memory({})
    with pytest.raises(ValueError, match="columns"):
        plot_toy_memory({"bad": pd.DataFrame({"step": [0]})})
