"""Clean/corrupted pairs, activation patching, pattern patching and ablations on one biography."""

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from workbench.config import preset
from workbench.data.biography_data import BiographyData
from workbench.patching.ablations import ValueTarget, ablate, activation_patching, make_pair, pattern_patching_scores
from workbench.viz import plot_heads, plot_layer_position


@pytest.fixture(scope="module")
def model(tiny_run):
    return tiny_run.load_model(40)


@pytest.fixture(scope="module")
def pair(tiny_run):
    return make_pair(tiny_run.data, individual=3, attribute="birth_city", seed=1)


def test_pair_is_aligned_and_differs_exactly_at_name_tokens(tiny_run, pair):
    data = tiny_run.data
    n_attr = len(data.config.data.attributes)
    name, other = data.biographer.name_tokens(3), data.biographer.name_tokens(pair.corrupt_with)
    assert pair.clean.shape == pair.corrupted.shape == (1, len(pair.labels))
    differ = torch.nonzero(pair.clean[0] != pair.corrupted[0])[:, 0].tolist()
    assert differ == list(pair.name_positions) and len(differ) == n_attr * len(name)
    assert pair.corrupted[0, list(pair.name_positions)].tolist() == other * n_attr
    a = data.config.data.attributes.index("birth_city")
    assert pair.target.tokens == tuple(data.biographer.value_tokens(3, a))
    assert pair.clean[0, list(pair.value_positions)].tolist() == list(pair.target.tokens)
    assert pair.value == data.population.describe(3)["birth_city"]
    assert all(pair.labels[p].startswith("[") for p in pair.name_positions)
    assert data.tokenizer.decode(pair.target.tokens).strip() == pair.value


@pytest.fixture(scope="module")
def coarse_data():
    """Data whose small vocabulary splits names into varying numbers of tokens."""
    return BiographyData(preset("tiny", data={"vocab_size": 512}))


def test_make_pair_matches_name_lengths_and_rejects_bad_input(coarse_data):
    bio = coarse_data.biographer
    pair = make_pair(coarse_data, individual=3, attribute="major")
    n = len(bio.name_tokens(3))
    assert len(bio.name_tokens(pair.corrupt_with)) == n and len({len(bio.name_tokens(i)) for i in range(96)}) > 1
    assert torch.nonzero(pair.clean[0] != pair.corrupted[0])[:, 0].tolist() == list(pair.name_positions)
    longer = next(i for i in range(len(coarse_data.population.names)) if len(bio.name_tokens(i)) != n)
    for kwargs, match in [
        ({"corrupt_with": longer}, "same number of tokens"),
        ({"corrupt_with": 3}, "corrupt_with"),
        ({"attribute": "hobby"}, "attribute"),
        ({"individual": 10**6}, "individual"),
    ]:
        args = {"individual": 3, "attribute": "major", **kwargs}
        with pytest.raises(ValueError, match=match):
            make_pair(coarse_data, **args)


def test_resid_patching_restores_clean_at_the_final_position_and_nothing_before_the_name(model, pair):
    assert len(pair.target.positions) == 1  # a one-token value: the final position carries the whole score
    post = activation_patching(model, pair.clean, pair.corrupted, pair.target, "resid_post", progress=False)
    last = post[(post.layer == model.cfg.n_layers - 1) & (post.position == pair.target.final_position)]
    assert last["normalized"].item() == pytest.approx(1.0, abs=1e-4)
    assert last["score"].item() == pytest.approx(post.attrs["clean_score"], abs=1e-5)

    pre = activation_patching(
        model, pair.clean, pair.corrupted, pair.target, "resid_pre", labels=pair.labels, progress=False
    )
    assert list(pre.columns) == ["layer", "position", "token", "score", "normalized"]
    assert len(pre) == model.cfg.n_layers * pair.clean.shape[1]
    assert pre.attrs["clean_score"] != pre.attrs["corrupted_score"]
    before_name = pre[pre.position < min(pair.name_positions)]  # identical activations: nothing is patched
    assert len(before_name) and (before_name["score"] == pre.attrs["corrupted_score"]).all()
    assert (before_name["normalized"] == 0).all()
    assert pre.loc[pre.position == pair.name_positions[0], "token"].iloc[0] == pair.labels[pair.name_positions[0]]
    assert pre["normalized"].abs().max() > 0


@pytest.mark.parametrize("component", ["attn_out", "mlp_out", "q", "k", "v", "z", "pattern"])
def test_activation_patching_tables(model, pair, component):
    df = activation_patching(model, pair.clean, pair.corrupted, pair.target, component, progress=False)
    cfg = model.cfg
    if component.endswith("_out"):
        assert list(df.columns) == ["layer", "position", "token", "score", "normalized"]
        assert len(df) == cfg.n_layers * pair.clean.shape[1]
    else:
        assert list(df.columns) == ["layer", "head", "score", "normalized"]
        assert sorted(zip(df["layer"], df["head"])) == [(l, h) for l in range(cfg.n_layers) for h in range(cfg.n_heads)]
    assert np.isfinite(df["score"]).all()


def test_pattern_patching_scores(tiny_run, model, pair):
    same = pattern_patching_scores(model, tiny_run.load_model(40), pair.clean, pair.target, progress=False)
    assert list(same.columns) == ["layer", "head", "score", "delta"]
    assert len(same) == model.cfg.n_layers * (model.cfg.n_heads + 1)
    assert (same["delta"] == 0).all()  # the model's own patterns: nothing changes
    early = pattern_patching_scores(model, tiny_run.load_model(0), pair.clean, pair.target, progress=False)
    assert (early["delta"] != 0).any()
    assert set(early["head"]) == {-1, *range(model.cfg.n_heads)}


def test_ablations(tiny_run, model, pair):
    cfg = model.cfg
    zero = ablate(model, pair.clean, pair.target, progress=False)
    assert list(zero.columns) == ["layer", "head", "score", "delta"] and len(zero) == cfg.n_layers * cfg.n_heads
    assert (zero["delta"] != 0).all()
    mlps = ablate(model, pair.clean, pair.target, units="mlps", progress=False)
    assert mlps["head"].tolist() == [-1] * cfg.n_layers and (mlps["delta"] != 0).all()
    for units in ("heads", "mlps"):
        own = ablate(model, pair.clean, pair.target, kind="mean", units=units, mean_batch=pair.clean, progress=False)
        assert (own["delta"] == 0).all()  # the mean over a batch of one is the activation itself
    batch = tiny_run.data.eval_batch("seen", 8)
    mean = ablate(model, pair.clean, pair.target, kind="mean", mean_batch=batch, progress=False)
    assert (mean["delta"] != 0).any() and (mean["score"] != zero["score"]).any()


def test_bad_arguments(model, pair):
    for kwargs, match in [({"kind": "max"}, "kind"), ({"units": "layers"}, "units"), ({"kind": "mean"}, "mean_batch")]:
        with pytest.raises(ValueError, match=match):
            ablate(model, pair.clean, pair.target, progress=False, **kwargs)
    with pytest.raises(ValueError, match="component"):
        activation_patching(model, pair.clean, pair.corrupted, pair.target, "embed")
    with pytest.raises((ValueError, TypeError), match="shape|parameter 'corrupted'"):  # TypeError: the test checker
        activation_patching(model, pair.clean, pair.corrupted[:, :-1], pair.target, "resid_pre")
    with pytest.raises(ValueError, match="positions"):
        ValueTarget(positions=(0,), tokens=(5,))


def test_plots(model, pair):
    pre = activation_patching(
        model, pair.clean, pair.corrupted, pair.target, "resid_pre", labels=pair.labels, progress=False
    )
    fig = plot_layer_position(pre)
    assert isinstance(fig, Figure)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(pair.labels)
    heads = activation_patching(model, pair.clean, pair.corrupted, pair.target, "z", progress=False)
    fig = plot_heads(heads)
    assert isinstance(fig, Figure) and fig.axes[0].images[0].get_array().shape == (
        model.cfg.n_layers,
        model.cfg.n_heads,
    )
