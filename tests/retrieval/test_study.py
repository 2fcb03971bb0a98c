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
    assert np.allclose(m["multiplier"], m["equivalent_step"] / m["step"])
    assert 0 <= study.meta["datastore"]["name_recall_at_1"] <= 1 and study.meta["datastore"]["documents"] > 0


@pytest.mark.parametrize("kw, field", [
    ({"steps": (7,)}, "retrieval.steps"), ({"m": 3}, "retrieval.m"), ({"modes": ("web",)}, "retrieval.modes"),
    ({"modes": ("vote",), "votes": 0}, "retrieval.votes"), ({"groups": ("new",)}, "retrieval.groups"),
    ({"name": "a/b"}, "retrieval.name")])
def test_bad_specs_raise_before_compute(packed_run, kw, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        retrieve(packed_run, RetrievalConfig(**{"name": "bad", **kw}), progress=False)
    assert not (packed_run.path / "retrieval" / "bad").exists()


def test_an_unpacked_run_has_no_room_for_documents(tiny_run):
    with pytest.raises(ValueError, match="data.packing.k > 1"):
        experiment.retrieve(tiny_run.path, m=1, progress=False)
