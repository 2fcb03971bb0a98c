"""workbench.retrieval.study: a saved, reloadable study whose no-retrieval rows are the run's metrics."""

from __future__ import annotations

import numpy as np
import pytest

from workbench import experiment
from workbench.retrieval.study import RetrievalConfig, load_retrieval, retrieve

CONFIG = RetrievalConfig(steps=(20, 40), m=2, votes=2, eval_size=0, n_boot=50)


@pytest.fixture(scope="module")
def study(packed_run):
    return retrieve(packed_run, CONFIG, progress=False)


def test_study_is_saved_in_the_run_and_reloaded(packed_run, study):
    assert study.path == packed_run.path / "retrieval" / "default"
    assert study.config == CONFIG
    again = retrieve(packed_run, CONFIG, progress=False)  # loaded, not recomputed
    assert again.meta["sha256"] == study.meta["sha256"]
    assert load_retrieval(study.path).summary.equals(study.summary)
    with pytest.raises(ValueError, match="another retrieval config"):
        retrieve(packed_run, RetrievalConfig(steps=(20, 40), m=1, votes=2), progress=False)


def test_no_retrieval_rows_are_the_runs_own_evaluation(packed_run, study):
    metrics = packed_run.metrics.set_index("step")
    none = study.items[(study.items["mode"] == "none") & (study.items["group"] == "seen")]
    for step, g in none.groupby("step"):
        assert g["loss"].mean() == pytest.approx(metrics.loc[step, "attribute_loss"], rel=1e-4)
        assert g["correct"].mean() == pytest.approx(metrics.loc[step, "attribute_accuracy"])


def test_summary_and_multipliers_cover_every_step_and_mode(packed_run, study):
    s = study.summary
    assert set(s["step"]) == {20, 40}
    assert set(s[s["group"] == "seen"]["mode"]) == {"none", "bm25", "oracle", "vote"}
    assert set(s[s["group"] == "heldout"]["mode"]) == {"none", "bm25", "vote"}
    assert (s["accuracy_lo"] <= s["accuracy"] + 1e-12).all() and (s["accuracy"] <= s["accuracy_hi"] + 1e-12).all()
    m = study.multipliers
    assert set(m["mode"]) == {"none", "bm25", "oracle", "vote"} and set(m["status"]) <= {"within", "beyond", "below"}
    within = m["status"] == "within"
    assert np.allclose(m["multiplier"][within], (m["equivalent_step"] / m["step"])[within])
    assert m["multiplier"][~within].isna().all() and m["bound"][~within].notna().all()  # a bound, never a number
    assert 0 <= study.meta["datastore"]["name_recall_at_1"] <= 1 and study.meta["datastore"]["documents"] > 0


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"steps": (7,)}, "retrieval.steps"),
        ({"m": 3}, "retrieval.m"),
        ({"modes": ("web",)}, "retrieval.modes"),
        ({"modes": ("vote",), "votes": 0}, "retrieval.votes"),
        ({"groups": ("new",)}, "retrieval.groups"),
        ({"name": "a/b"}, "retrieval.name"),
    ],
)
def test_bad_specs_raise_before_compute(packed_run, kw, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        retrieve(packed_run, RetrievalConfig(**{"name": "bad", **kw}), progress=False)
    assert not (packed_run.path / "retrieval" / "bad").exists()


def test_an_unpacked_run_has_no_room_for_documents(tiny_run):
    with pytest.raises(ValueError, match="data.packing.k > 1"):
        experiment.retrieve(tiny_run.path, m=1, progress=False)


@pytest.fixture(scope="module")
def constant_runs(tmp_path_factory):
    """A constant-lr packed tiny run of 20 steps and the same config trained for 40 (its longer baseline)."""
    from workbench.config import preset

    root = tmp_path_factory.mktemp("constant")
    cfg = preset("tiny", data={"packing": {"k": 3}}, train={"schedule": "constant", "n_checkpoints": 2})
    short = experiment.train(cfg.replace(train={"steps": 20}), root / "short", progress=False)
    return short, experiment.train(cfg, root / "long", progress=False)


def test_a_longer_baseline_run_gives_the_equivalent_steps_past_the_runs_end(constant_runs):
    from workbench.retrieval.multiplier import compute_multiplier

    short, long = constant_runs
    r = retrieve(
        short,
        RetrievalConfig(
            name="longer", steps=(20,), modes=("none", "bm25"), votes=0, n_boot=20, baseline_run=str(long.path)
        ),
        progress=False,
    )
    assert r.meta["baseline"]["times_longer"] == 2.0 and r.meta["baseline"]["run"] == str(long.path)
    base = long.metrics.dropna(subset=["attribute_accuracy"])
    for row in r.multipliers.itertuples():  # each row is the multiplier on the long run's curve
        m = compute_multiplier(base["step"], base["attribute_accuracy"], row.step, row.accuracy)
        assert row.status == m.status and np.isclose(row.multiplier, m.multiplier, equal_nan=True)


def test_a_baseline_of_another_config_or_a_cosine_run_is_refused(constant_runs, packed_run, tiny_run):
    short, long = constant_runs
    with pytest.raises(ValueError, match=r"retrieval.baseline_run=.* allowed a run of this run's config with only"):
        retrieve(short, RetrievalConfig(name="bad", steps=(20,), baseline_run=str(tiny_run.path)), progress=False)
    with pytest.raises(ValueError, match=r"retrieval.baseline_run=.* allowed a run of this run's config with only"):
        retrieve(packed_run, RetrievalConfig(name="bad", steps=(20,), baseline_run=str(long.path)), progress=False)
    with pytest.raises(ValueError, match=r"retrieval.baseline_run=.* allowed a run of at least train.steps=40"):
        retrieve(long, RetrievalConfig(name="bad", steps=(20,), baseline_run=str(short.path)), progress=False)
