"""Retrains: the selected sequences, the exact twin before the window, validation and the sweep plan."""

import numpy as np
import pytest

from workbench.attribution import retrain
from workbench.config import EditConfig, override

B, N_WINDOW = 16, 160  # tiny batch size; sequences in the window [10, 20)


def _edit(attribution, **kw) -> EditConfig:
    return EditConfig(str(attribution.path), **kw)


def test_top_and_bottom_are_the_most_promoting_and_demoting_sequences(attribution):
    seqs = attribution.sequences
    ranked = seqs.sort_values("influence", ascending=False, kind="stable")
    n = round(0.3 * N_WINDOW)
    for selection, want in (("top", ranked.head(n)), ("bottom", ranked.tail(n))):
        got = retrain.select(attribution, _edit(attribution, selection=selection, percent=30))
        assert {tuple(p) for p in got.tolist()} == {tuple(p) for p in want[["step", "row"]].to_numpy().tolist()}
        assert len(got) == n


def test_random_and_matched_controls(attribution):
    seqs = attribution.sequences.set_index(["step", "row"])
    top = retrain.select(attribution, _edit(attribution, selection="top", percent=30))
    matched = retrain.select(attribution, _edit(attribution, selection="matched", percent=30))
    rand = retrain.select(attribution, _edit(attribution, selection="random", percent=30))
    again = retrain.select(attribution, _edit(attribution, selection="random", percent=30, selection_seed=1))

    def who(pairs):
        return seqs.loc[[tuple(p) for p in pairs.tolist()], "individual"].value_counts().sort_index()

    assert who(matched).equals(who(top))  # the same individuals, as many sequences each
    assert len(rand) == len(top) == len({tuple(p) for p in rand.tolist()})
    assert set(map(tuple, rand.tolist())) != set(map(tuple, again.tolist()))  # the seed matters
    assert np.array_equal(rand, retrain.select(attribution, _edit(attribution, selection="random", percent=30)))


def test_individual_unit_edits_every_window_sequence_of_the_top_individuals(attribution):
    seqs = attribution.sequences
    totals = seqs.groupby("individual")["influence"].sum().sort_values(ascending=False)
    n = round(0.2 * len(totals))
    got = retrain.select(attribution, _edit(attribution, percent=20, unit="individual"))
    want = seqs[seqs["individual"].isin(totals.index[:n])][["step", "row"]].to_numpy()
    assert np.array_equal(got, want)


@pytest.fixture(scope="module")
def retrained(dense_run, attribution, tmp_path_factory):
    from workbench.experiment import train
    from workbench.run import load_run

    config = retrain.retrain_config(attribution, selection="top", percent=30)
    path = tmp_path_factory.mktemp("retrains") / "top30"
    train(config, path, progress=False)
    return load_run(path)


def test_the_retrain_is_the_exact_twin_until_the_window_then_differs(dense_run, retrained):
    mine, theirs = retrained.dir.manifest()["checkpoints"], dense_run.dir.manifest()["checkpoints"]
    for step in (0, 5, 10):  # the batches before the window are the attributed run's
        assert mine[str(step)]["sha256"] == theirs[str(step)]["sha256"], step
    for step in (15, 20, 40):
        assert mine[str(step)]["sha256"] != theirs[str(step)]["sha256"], step
    m, t = retrained.metrics.set_index("step"), dense_run.metrics.set_index("step")
    assert m.loc[10, "attribute_loss"] == t.loc[10, "attribute_loss"]


def test_the_retrain_trains_on_the_edited_batches(dense_run, attribution, retrained):
    data = retrained.data
    data.set_edit(retrain.validate_edit(retrained.config))
    removed = retrain.select(attribution, retrained.config.edit)
    for step in (12, 19):
        original = dense_run.data.train_batch(step).individuals.tolist()
        keep = [r for r in range(B) if [step, r] not in removed.tolist()]
        assert data.train_batch(step).individuals.tolist() == [original[r] for r in keep]


@pytest.mark.parametrize(
    "change, message",
    [
        (["seed=1"], "seed=1 differs from the attributed run"),
        (["train.lr=0.001"], "train.lr=0.001 differs from the attributed run"),
        (["train.steps=30"], "train.steps=30 differs from the attributed run"),  # a cosine schedule: steps fixed
        (["data.n_individuals=50"], "data=.* differs from the attributed run"),
    ],
)
def test_a_retrain_that_is_not_the_twin_is_refused(attribution, change, message, tmp_path):
    from workbench.experiment import train

    config = override(retrain.retrain_config(attribution), change)
    with pytest.raises(ValueError, match=message):
        train(config, tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()


def test_edit_config_ranges():
    for kw, message in (
        ({"percent": 0}, r"edit.percent=0 is out of range: allowed a number in \(0.0, 100.0\)"),
        ({"percent": 100}, "edit.percent=100 is out of range"),
        ({"selection": "best"}, "edit.selection='best' is out of range"),
        ({"action": "upweight"}, "edit.action='upweight' is out of range: allowed remove | duplicate"),
        ({"unit": "individual", "selection": "matched"}, "matched pairs individuals"),
    ):
        with pytest.raises(ValueError, match=message):
            EditConfig("x", **kw)


def test_the_retrain_sweep_plans_one_validated_twin_per_point(attribution, tmp_path, monkeypatch):
    from workbench.experiment import plan_sweep

    monkeypatch.setenv("WORKBENCH_CHECKPOINTS", str(tmp_path))
    arms = [{"selection": s, "percent": k} for s in ("top", "random") for k in (10, 30)] + [
        {"action": "duplicate", "selection": "top", "percent": 10}
    ]
    spec = retrain.retrain_spec(attribution, arms=arms, selection_seeds=(0, 1))
    planned = plan_sweep(spec)
    assert len(planned.trials) == 10
    editing = {
        (t.config.edit.action, t.config.edit.selection, t.config.edit.percent, t.config.edit.selection_seed)
        for t in planned.trials
    }
    assert len(editing) == 10 and all(t.config.seed == attribution.meta["seed"] for t in planned.trials)
    assert "seed0-duplicate-top-k10-selection_seed1" in {t.name for t in planned.trials}
    bad = retrain.retrain_spec(attribution, arms=[{"percent": 100}])
    with pytest.raises(ValueError, match="edit.percent=100"):
        plan_sweep(bad)


def test_planted_selects_every_window_sequence_of_the_planted_individuals(attribution, monkeypatch):
    from workbench.config import assign, preset

    celebrities = assign(preset("tiny"), {"data.sampler.kind": "celebrities", "data.sampler.n_celebrities": 7})
    assert retrain.planted_individuals(celebrities).tolist() == list(range(7))
    seqs = attribution.sequences
    monkeypatch.setattr(retrain, "planted_individuals", lambda config: np.array([0, 1, 2]))
    got = retrain.select(attribution, _edit(attribution, selection="planted"))
    want = seqs[seqs["individual"].isin([0, 1, 2])][["step", "row"]].to_numpy()
    assert len(want) > 0 and np.array_equal(got, want)


def test_planted_on_a_run_without_a_planted_set_is_refused_before_training(attribution, tmp_path):
    from workbench.experiment import train

    config = retrain.retrain_config(attribution, selection="planted")
    message = r"edit.selection='planted' on a run with data.sampler.kind='uniform' and data.n_planted=0"
    with pytest.raises(ValueError, match=message):
        train(config, tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()
