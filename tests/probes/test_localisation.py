import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from workbench.probes.localisation import METHODS, intervened_loss, localisation_over_checkpoints, localise
from workbench.probes.sites import biographies
from workbench.viz import plot_localisation


@pytest.fixture(scope="module")
def scores(tiny_model, tiny_data):
    return localise(tiny_model, tiny_data, n=16, methods=METHODS)


@pytest.fixture(scope="module")
def clean(tiny_data):
    return biographies(tiny_data, np.arange(12))


def test_one_finite_score_per_layer_method_and_attribute(scores, tiny_model, tiny_data):
    n_layers = tiny_model.cfg.n_layers
    attributes = {*tiny_data.config.data.attributes, "all"}
    assert set(scores["method"]) == set(METHODS)
    counts = scores.groupby(["method", "attribute"])["layer"].apply(sorted)
    assert len(counts) == len(METHODS) * len(attributes)
    assert all(layers == list(range(n_layers)) for layers in counts)
    assert np.isfinite(scores["score"]).all() and np.isfinite(scores["nats"]).all()


def test_last_layer_mlp_at_the_name_cannot_reach_the_values(scores, tiny_model):
    # the last MLP's output at a name position only feeds that position's own logits
    last = scores[scores["layer"] == tiny_model.cfg.n_layers - 1]
    assert (last["nats"].abs() < 1e-5).all()
    first = scores[(scores["layer"] == 0) & (scores["method"] == "zero_ablation")]
    assert (first["nats"].abs() > 1e-4).any()


def test_ablating_nothing_changes_nothing_and_ablating_everything_does(tiny_model, tiny_data, clean):
    n_attr = len(tiny_data.config.data.attributes)
    base = intervened_loss(tiny_model, clean, 0, clean.name_mask, None, n_attr)
    nothing = torch.zeros_like(clean.tokens, dtype=torch.bool)
    assert torch.equal(intervened_loss(tiny_model, clean, 0, nothing, 0.0, n_attr, chunk=5), base)
    everything = torch.ones_like(nothing)
    assert (intervened_loss(tiny_model, clean, 0, everything, 0.0, n_attr) - base).abs().max() > 1e-3
    assert base.shape == (len(clean), n_attr) and (base > 0).all()


def test_restoring_the_whole_clean_residual_recovers_the_clean_loss(tiny_model, tiny_data, clean):
    n_attr = len(tiny_data.config.data.attributes)
    last = tiny_model.cfg.n_layers - 1
    site = "hook_resid_post"
    kept, corrupted = tiny_data.biographer.corrupt_names(clean, tiny_data.population.seen)
    everything = torch.ones_like(kept.tokens, dtype=torch.bool)
    _, cache = tiny_model.run_with_cache(kept.tokens, names_filter=f"blocks.{last}.{site}")
    clean_loss = intervened_loss(tiny_model, kept, last, everything, None, n_attr)
    corrupt_loss = intervened_loss(tiny_model, corrupted, last, everything, None, n_attr)
    patched = intervened_loss(
        tiny_model, corrupted, last, everything, cache[f"blocks.{last}.{site}"], n_attr, site=site, chunk=5
    )
    assert (corrupt_loss - clean_loss).abs().max() > 1e-4
    torch.testing.assert_close(patched, clean_loss)


def test_corrupted_biographies_change_only_the_name(tiny_data, clean):
    kept, corrupted = tiny_data.biographer.corrupt_names(clean, tiny_data.population.seen, seed=3)
    assert len(kept) == len(corrupted) > 0
    is_name = kept.name_mask
    assert torch.equal(kept.tokens[~is_name], corrupted.tokens[~is_name])
    names = {tuple(tiny_data.biographer.name_tokens(i)) for i in tiny_data.population.seen}
    for r in range(len(kept)):
        own = tiny_data.biographer.name_tokens(int(kept.individuals[r]))
        new = corrupted.tokens[r, is_name[r]].tolist()
        other = new[: len(own)]
        assert tuple(other) in names and all(x != y for x, y in zip(other, own))  # no name token survives
        assert len(other) == len(own)
        assert new == other * (len(new) // len(own))  # the same other name in every sentence


def test_over_checkpoints_adds_the_step(tiny_run_copy):
    tiny_run = tiny_run_copy  # the results are cached in the run directory
    df = localisation_over_checkpoints(
        tiny_run, steps=[0, tiny_run.checkpoint_steps[-1]], n=8, methods=("zero_ablation",), progress=False
    )
    assert list(df.columns[:2]) == ["step", "layer"]
    assert sorted(df["step"].unique()) == [0, tiny_run.checkpoint_steps[-1]]
    fig = plot_localisation(df)
    assert len(fig.axes[0].lines) >= 2
    plt.close(fig)
    with pytest.raises(ValueError, match="steps"):
        localisation_over_checkpoints(tiny_run, steps=[10**6], progress=False)


def test_plot_of_one_checkpoint(scores):
    fig = plot_localisation(scores)
    assert len(fig.axes) == len(METHODS)
    plt.close(fig)
    with pytest.raises(ValueError, match="attribute"):
        plot_localisation(scores, attribute="shoe_size")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"methods": ("resample",)}, "methods"),
        ({"n": 0}, "n="),
        ({"n": 10**6}, "n="),
        ({"layers": [7]}, "layers"),
        ({"group": "everyone"}, "group"),
    ],
)
def test_bad_arguments_raise(tiny_model, tiny_data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        localise(tiny_model, tiny_data, **kwargs)
