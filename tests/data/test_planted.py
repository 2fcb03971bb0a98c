"""The planted sub-population: values that follow from a reserved first name, unique names, prefix stability."""

import numpy as np
import pytest

from workbench.config import assign, preset
from workbench.data.population import make_population


def _config(**data):
    return assign(preset("tiny"), {f"data.{k}": v for k, v in data.items()}).data


def test_planted_values_follow_from_a_reserved_first_name_no_one_else_carries():
    config = _config(n_individuals=300, n_planted=60, planted_names=4)
    pop = make_population(config, seed=3)
    first = pop.names[:, 0]
    assert set(first[:60]) <= set(range(4)) and len(set(first[:60])) == 4
    assert (first[60:] >= 4).all()  # held-out and every other group too
    for name in range(4):
        rows = pop.values[:60][first[:60] == name]
        assert (rows == rows[0]).all()  # one rule per first name
    codes = {tuple(r) for r in pop.names.tolist()}
    assert len(codes) == len(pop.names)  # full names stay unique


def test_everything_but_the_moved_first_names_is_the_unplanted_population():
    plain = make_population(_config(n_individuals=300), seed=3)
    planted = make_population(_config(n_individuals=300, n_planted=60, planted_names=4), seed=3)
    assert np.array_equal(planted.values[60:], plain.values[60:])
    assert np.array_equal(planted.template_order, plain.template_order)
    kept = plain.names[60:, 0] >= 4
    assert np.array_equal(planted.names[60:][kept][:, :2], plain.names[60:][kept][:, :2])


def test_planting_is_prefix_stable():
    small = make_population(_config(n_individuals=300, n_heldout=20, n_planted=60), seed=1)
    large = make_population(_config(n_individuals=300, n_heldout=200, n_planted=60), seed=1)
    assert np.array_equal(small.names, large.names[: len(small.names)])
    assert np.array_equal(small.values, large.values[: len(small.values)])


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"n_individuals": 300, "n_planted": 301},
            r"data.n_planted=301 is out of range: allowed an integer in \[0, 300\]",
        ),
        ({"n_planted": 5, "planted_names": 0}, r"data.planted_names=0 is out of range"),
    ],
)
def test_bad_planted_settings_raise(data, message):
    with pytest.raises(ValueError, match=message):
        _config(**data)
