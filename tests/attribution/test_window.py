"""Attribution over a window of steps: the saved table, its aggregates, caching, and bad configs."""

import json

import numpy as np
import pandas as pd
import pytest

from workbench.attribution.window import AttributionConfig, aggregate, attribute, load_attribution, resolve

WINDOW, HEAD = (10, 20), (1, 0)  # as in conftest's `attribution`


def test_one_row_per_window_sequence_in_step_row_order(dense_run, attribution):
    seqs = attribution.sequences
    b = dense_run.config.train.batch_size
    assert len(seqs) == (WINDOW[1] - WINDOW[0]) * b == attribution.meta["n_sequences"]
    assert seqs[["step", "row"]].to_numpy().tolist() == [[s, r] for s in range(*WINDOW) for r in range(b)]
    data = dense_run.data
    want = np.concatenate([data.train_batch(s).individuals.numpy() for s in range(*WINDOW)])
    assert np.array_equal(seqs["individual"].to_numpy(), want)
    assert attribution.config.step == 20 and np.isfinite(seqs["influence"]).all() and seqs["influence"].std() > 0


def test_per_attribute_influences_add_up_to_the_sequence_influence(attribution):
    seqs = attribution.sequences
    parts = seqs[[c for c in seqs.columns if c.startswith("influence/")]].sum(axis=1) + seqs["bos_influence"]
    scale = seqs["influence"].abs().max()
    assert np.allclose(parts, seqs["influence"], atol=1e-4 * scale)


def test_aggregates_match_an_independent_groupby(attribution):
    seqs = attribution.sequences
    by_ind = attribution.aggregate("individual").set_index("individual")
    want = seqs.groupby("individual")["influence"].agg(["sum", "size"])
    assert (
        np.allclose(by_ind.loc[want.index, "total"], want["sum"])
        and (by_ind.loc[want.index, "n"] == want["size"]).all()
    )
    assert list(by_ind["total"]) == sorted(by_ind["total"], reverse=True)
    by_template = attribution.aggregate("template")
    a = json.loads((attribution.path / "attribution.json").read_text())["attributes"][0]
    mine = seqs.groupby(f"template/{a}")[f"influence/{a}"].sum()
    got = by_template[by_template["attribute"] == a].set_index("template")["total"]
    assert np.allclose(got.loc[mine.index], mine)
    assert aggregate(seqs, "step")["n"].eq(len(seqs) // (WINDOW[1] - WINDOW[0])).all()
    assert np.isclose(
        attribution.aggregate("attribute")["total"].sum() + seqs["bos_influence"].sum(),
        seqs["influence"].sum(),
        atol=1e-4 * seqs["influence"].abs().max(),
    )


def test_an_existing_attribution_is_loaded_not_recomputed(dense_run, attribution):
    again = attribute(dense_run, AttributionConfig(*HEAD, *WINDOW, fit_size=0), progress=False)
    assert again.path == attribution.path and again.meta == attribution.meta
    other = AttributionConfig(*HEAD, *WINDOW, fit_size=0, measure_size=128)  # a field the folder's name leaves out
    assert resolve(dense_run, other).name == attribution.config.name
    with pytest.raises(ValueError, match="holds another attribution config"):
        attribute(dense_run, other, progress=False)
    damped = AttributionConfig(*HEAD, *WINDOW, step=20, damping=1e-3)  # damping is in the name: its own folder
    assert damped.name == attribution.config.name + "-d0.001"


def test_an_attribution_saved_with_the_old_probe_keys_still_loads(attribution, tmp_path):
    """attribution.json written before `probe` was renamed `measure` (and `probe_size` `measure_size`)."""
    import shutil

    old = tmp_path / attribution.path.name
    shutil.copytree(attribution.path, old)
    meta = json.loads((old / "attribution.json").read_text())
    config = meta["config"]
    meta["config"] = {
        ("probe" if k == "measure" else "probe_size" if k == "measure_size" else k): v for k, v in config.items()
    }
    assert "probe" in meta["config"] and "measure" not in meta["config"]
    (old / "attribution.json").write_text(json.dumps(meta))
    loaded = load_attribution(old)
    assert loaded.config == attribution.config and loaded.config.measure == "attention"


def test_a_tampered_table_is_refused(attribution, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(attribution.path, copy)
    seqs = pd.read_csv(copy / "sequences.csv")
    seqs.loc[0, "influence"] += 1.0
    seqs.to_csv(copy / "sequences.csv", index=False)
    with pytest.raises(ValueError, match="does not match its sha256"):
        load_attribution(copy)
    with pytest.raises(ValueError, match="not an attribution folder"):
        load_attribution(tmp_path)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"layer": 2}, r"layer=2 is out of range: allowed an integer in \[0, 1\]"),
        ({"head": 2}, r"head=2 is out of range: allowed an integer in \[0, 1\]"),
        (
            {"end": 41},
            r"attribution.start, attribution.end = 10, 41: allowed start < end within the run.s steps \[0, 40\]",
        ),
        ({"step": 7}, r"attribution.step=7 is out of range: allowed a checkpoint step of the run"),
        ({"fit_size": 161}, r"attribution.fit_size=161 is out of range: allowed \[0, 160\] \(the window's sequences"),
    ],
)
def test_bad_configs_for_the_run_raise_before_any_compute(dense_run, kw, message):
    cfg = dict(layer=HEAD[0], head=HEAD[1], start=10, end=20) | kw
    before = sorted(p.name for p in (dense_run.path / "attribution").glob("*"))
    with pytest.raises(ValueError, match=message):
        attribute(dense_run, AttributionConfig(**cfg), progress=False)
    assert sorted(p.name for p in (dense_run.path / "attribution").glob("*")) == before
    assert not list(dense_run.path.glob(".attribution-*"))


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"start": 10, "end": 10}, r"attribution.end=10 is out of range: allowed an integer in \[11, inf\]"),
        ({"measure": "value"}, "attribution.measure='value' is out of range: allowed attention | logit"),
        ({"fisher": "exact"}, "attribution.fisher='exact' is out of range"),
        ({"damping": -1.0}, "attribution.damping=-1.0 is out of range"),
        ({"layer": -1}, "attribution.layer=-1 is out of range"),
        ({"estimator": "kfac"}, "attribution.estimator='kfac' is out of range: allowed exact | ekfac"),
        ({"scoring": "after"}, "attribution.scoring='after' is out of range: allowed checkpoint | trajectory"),
        ({"scoring": "trajectory", "step": 20}, "attribution.step=20 is out of range: allowed 0 with scoring="),
    ],
)
def test_bad_configs_raise_on_construction(kw, message):
    with pytest.raises(ValueError, match=message):
        AttributionConfig(**(dict(layer=1, head=0, start=0, end=10) | kw))


@pytest.mark.slow  # a second attribution: ~20 s
def test_a_registered_measure_of_ones_own_is_used_by_name(dense_run, monkeypatch):
    """A user measure (attention to BOS at the value queries) registered in MEASURES is attributed by name."""
    from workbench.attribution.measures import MEASURES, Measure

    def to_bos(view, batch):
        view(batch.tokens)
        queries = batch.value_query_mask.float()
        return (view.captured["pattern"][:, :, 0] * queries).sum(1) / queries.sum(1)

    monkeypatch.setitem(MEASURES, "bos", lambda: Measure("bos", ("qk",), to_bos))
    a = attribute(
        dense_run, AttributionConfig(1, 0, 10, 12, measure="bos", measure_size=32, fit_size=0), progress=False
    )
    assert a.config.measure == "bos" and len(a.sequences) == 32 and a.sequences["influence"].std() > 0
    with pytest.raises(ValueError, match="attribution.measure"):
        AttributionConfig(1, 0, 10, 12, measure="nope")


def test_segments_split_the_window_at_the_checkpoints_each_scored_at_the_last_one_before():
    from workbench.attribution.window import segments

    checkpoints = [0, 5, 10, 15, 20, 40]
    cfg = AttributionConfig(1, 0, 12, 23, scoring="trajectory")
    assert segments(cfg, checkpoints) == [(12, 15, 10), (15, 20, 15), (20, 23, 20)]
    assert segments(AttributionConfig(1, 0, 10, 15, scoring="trajectory"), checkpoints) == [(10, 15, 10)]
    assert segments(AttributionConfig(1, 0, 12, 23, step=40), checkpoints) == [(12, 23, 40)]


def test_trajectory_scores_each_segment_at_its_own_checkpoint(dense_run):
    """Known answer: the trajectory attribution of [12, 20) (checkpoints every 5 steps) is, row for row, the
    one-checkpoint attribution of [12, 15) at step 10 followed by that of [15, 20) at step 15."""
    cfg = dict(layer=HEAD[0], head=HEAD[1], measure_size=32)
    along = attribute(dense_run, AttributionConfig(start=12, end=20, scoring="trajectory", **cfg), progress=False)
    parts = [
        attribute(dense_run, AttributionConfig(start=a, end=b, step=c, **cfg), progress=False).sequences
        for a, b, c in ((12, 15, 10), (15, 20, 15))
    ]
    want = pd.concat(parts, ignore_index=True)
    got = along.sequences
    assert got["checkpoint"].tolist() == want["checkpoint"].tolist() == [10] * 48 + [15] * 80
    assert np.allclose(got["influence"], want["influence"], rtol=1e-6, atol=1e-9 * want["influence"].abs().max())
    at_end = attribute(dense_run, AttributionConfig(start=12, end=20, **cfg), progress=False).sequences
    assert at_end["checkpoint"].eq(20).all() and not np.allclose(at_end["influence"], got["influence"], rtol=1e-2)


def test_the_exact_estimator_refuses_a_fit_beyond_its_memory_limit_before_any_compute(dense_run, monkeypatch):
    import workbench.attribution.window as window

    monkeypatch.setattr(window, "EXACT_MEMORY_LIMIT", 1000)
    calls = []
    import workbench.attribution.influence as influence

    monkeypatch.setitem(influence.INFLUENCES, "exact", lambda *a, **k: calls.append(1))
    before = sorted(p.name for p in (dense_run.path / "attribution").glob("*"))
    with pytest.raises(ValueError, match=r"attribution.fit_size=32: the exact influence would hold .* GiB: allowed"):
        attribute(dense_run, AttributionConfig(*HEAD, 10, 12, fit_size=32, measure_size=8), progress=False)
    assert not calls and sorted(p.name for p in (dense_run.path / "attribution").glob("*")) == before


def test_an_attribution_saved_before_the_estimator_field_loads_as_ekfac(attribution, tmp_path):
    import shutil

    old = tmp_path / attribution.path.name
    shutil.copytree(attribution.path, old)
    meta = json.loads((old / "attribution.json").read_text())
    meta["config"] = {k: v for k, v in meta["config"].items() if k not in ("estimator", "scoring")}
    (old / "attribution.json").write_text(json.dumps(meta))
    loaded = load_attribution(old).config
    assert (loaded.estimator, loaded.scoring) == ("ekfac", "checkpoint") and attribution.config.estimator == "exact"
