import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from workbench.data.kinds import NAME, VALUE
from workbench.probes.linear import chance_level, fit_probe, probe_accuracy, probe_scores, probes_over_checkpoints
from workbench.probes.sites import activations_at, biographies, probe_targets
from workbench.viz import plot_probes


def _planted(n: int, d: int, n_classes: int, noise: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n_classes, d, generator=g)
    y = torch.randint(n_classes, (n,), generator=g)
    return means[y] + noise * torch.randn(n, d, generator=g), y


def test_probe_decodes_a_linearly_planted_value_on_new_samples():
    x, y = _planted(800, 32, 10, noise=0.3, seed=0)
    s = probe_scores(x[:400], y[:400], x[400:], y[400:], 10)
    assert s["accuracy"] > 0.95 and s["chance"] < 0.2


def test_probe_on_noise_is_at_chance():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(2400, 32, generator=g), torch.randint(5, (2400,), generator=g)
    s = probe_scores(x[:400], y[:400], x[400:], y[400:], 5)
    assert abs(s["accuracy"] - 0.2) < 0.05  # 2,000 test samples: sd 0.009
    assert s["chance"] == pytest.approx(0.2, abs=0.05)


def test_probe_fits_its_training_set_and_weight_decay_shrinks_it():
    x, y = _planted(200, 16, 4, noise=1.0, seed=2)
    loose, tight = fit_probe(x, y, 4, weight_decay=1e-4, steps=60), fit_probe(x, y, 4, weight_decay=10.0, steps=60)
    assert loose.accuracy(x, y) > 0.9
    assert tight.weight.norm() < 0.2 * loose.weight.norm()
    assert loose.predict(x).shape == (200,)


def test_chance_level_is_the_majority_rate_or_uniform():
    assert chance_level(torch.tensor([1, 1, 2]), torch.tensor([1, 1, 1, 0]), 10) == 0.75
    assert chance_level(torch.tensor([3]), torch.tensor([0, 1]), 4) == 0.25


@pytest.mark.parametrize(
    "args, match",
    [
        ((torch.zeros(3, 2), torch.zeros(4, dtype=torch.long), 2), "x must"),
        ((torch.zeros(3, 2), torch.tensor([0, 1, 5]), 3), "n_classes"),
        ((torch.zeros(3, 2), torch.tensor([0, 1, 0]), 2, -1.0), "weight_decay"),
    ],
)
def test_bad_probe_input_raises(args, match):
    # mismatched shapes are caught by the test session's runtime checker of the [n d] / [n] annotations
    # (a TypeError naming the parameter) before the function's own ValueError (what users without it get)
    with pytest.raises((ValueError, TypeError), match=f"{match}|parameter 'y'"):
        fit_probe(*args)


def test_first_name_end_is_the_end_of_the_first_sentence_name(tiny_data):
    batch = biographies(tiny_data, np.arange(10))
    pos = batch.first_name_end
    for r, p in enumerate(pos.tolist()):
        kinds = batch.kind[r].tolist()
        assert kinds[p] == NAME and kinds[p + 1] != NAME
        assert VALUE not in kinds[:p]  # nothing about the individual precedes it
        assert kinds[:p].count(NAME) == len(tiny_data.biographer.name_tokens(int(batch.individuals[r]))) - 1


def test_value_query_positions_precede_each_value(tiny_data, tiny_model):
    batch = biographies(tiny_data, np.arange(6))
    n_attr = len(tiny_data.config.data.attributes)
    pos = batch.value_query_positions(n_attr)
    rows = torch.arange(6)[:, None]
    assert batch.value_start[rows, pos + 1].all()
    assert torch.equal(batch.attribute[rows, pos + 1], torch.arange(n_attr).expand(6, -1))
    assert (batch.kind[rows, pos] != VALUE).all()
    hook = "blocks.0.hook_resid_post"
    both = activations_at(tiny_model, batch, pos, [hook], chunk=4)[hook]
    one = activations_at(tiny_model, batch, pos[:, 2], [hook])[hook]
    assert both.shape == (6, n_attr, tiny_model.cfg.d_model)
    torch.testing.assert_close(both[:, 2], one)


def test_targets_are_the_individuals_values(tiny_data):
    ids = np.array([0, 5, 9])
    targets = probe_targets(tiny_data, ids)
    population, attrs = tiny_data.population, tiny_data.config.data.attributes
    assert targets["major"][0].tolist() == population.values[ids, attrs.index("major")].tolist()
    for y, n_classes in targets.values():
        assert 0 <= y.min() and y.max() < n_classes
    years = [population.describe(i)["birth_date"].split()[-1] for i in ids]
    assert [population.pools.years[y] for y in targets["birth_date.year"][0]] == years


@pytest.fixture(scope="module")
def tiny_probes(tiny_model, tiny_data):
    return probe_accuracy(tiny_model, tiny_data, n_train=40, n_test=16, fit_steps=30)


def test_probe_accuracy_covers_layers_sites_and_attributes(tiny_probes, tiny_model):
    df = tiny_probes
    assert len(df) == tiny_model.cfg.n_layers * 2 * 8  # 5 attributes + 3 birth-date components
    assert set(df["site"]) == {"resid_mid", "resid_post"}
    assert df["accuracy"].between(0, 1).all() and (df["chance"] > 0).all()
    assert df.groupby(["layer", "site"]).size().eq(8).all()


def test_probes_over_checkpoints_and_plot(tiny_run_copy, tiny_probes):
    df = probes_over_checkpoints(
        tiny_run_copy, steps=[0], n_train=20, n_test=8, fit_steps=5, layers=[0], progress=False
    )
    assert list(df.columns[:2]) == ["step", "layer"] and set(df["step"]) == {0}
    for frame in (df, tiny_probes):
        fig = plot_probes(frame)
        assert len(fig.axes) == 8
        plt.close(fig)


def test_probes_at_the_value_position(tiny_model, tiny_data):
    df = probe_accuracy(tiny_model, tiny_data, n_train=30, n_test=10, fit_steps=10, layers=[1], position="value")
    assert len(df) == 2 * 8 and df["accuracy"].between(0, 1).all()


def test_bad_probe_accuracy_arguments_raise(tiny_model, tiny_data):
    with pytest.raises(ValueError, match="position"):
        probe_accuracy(tiny_model, tiny_data, position="everywhere")
    with pytest.raises(ValueError, match="n="):
        probe_accuracy(tiny_model, tiny_data, n_train=60, n_test=60)  # more than the 64 individuals
    with pytest.raises(ValueError, match="n_test"):
        probe_accuracy(tiny_model, tiny_data, n_test=0)
