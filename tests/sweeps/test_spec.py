"""Sweep specs: parsing, the points of a grid and its cases, names, and bad specs refused with the field."""

from __future__ import annotations

import pytest

from workbench.sweeps.spec import Resources, SweepSpec, load_spec, shipped_specs


def test_grid_is_the_product_and_names_follow_the_values():
    spec = SweepSpec(
        name="s", preset="tiny", set={"train.steps": 10}, grid={"data.n_individuals": [32, 64], "seed": [0, 1, 2]}
    )
    points = spec.points()
    assert len(points) == 6
    assert points[0] == ("n_individuals32-seed0", {"train.steps": 10, "data.n_individuals": 32, "seed": 0})
    assert {n for n, _ in points} == {f"n_individuals{n}-seed{s}" for n in (32, 64) for s in (0, 1, 2)}


def test_cases_are_crossed_with_the_grid_and_named():
    spec = SweepSpec(
        name="c",
        preset="tiny",
        grid={"seed": [0, 1]},
        cases=[
            {"name": "uniform", "data.sampler.kind": "uniform"},
            {"name": "warmup", "data.sampler.kind": "warmup", "data.sampler.indiv_warmup": 8},
        ],
    )
    names = [n for n, _ in spec.points()]
    assert names == ["uniform-seed0", "uniform-seed1", "warmup-seed0", "warmup-seed1"]
    unnamed = SweepSpec(name="u", preset="tiny", cases=[{"data.sampler.kind": "uniform"}])
    assert unnamed.points()[0][0] == "kinduniform"
    assert dict(spec.points()[2][1]) == {"data.sampler.kind": "warmup", "data.sampler.indiv_warmup": 8, "seed": 0}


def test_trial_name_pattern_and_shared_leaf_names():
    spec = SweepSpec(
        name="p", preset="tiny", trial_name="ref{patch.reference_step}", grid={"patch.reference_step": [0, 10]}
    )
    assert [n for n, _ in spec.points()] == ["ref0", "ref10"]
    two = SweepSpec(name="q", preset="tiny", grid={"train.lr": [1e-3], "finetune.lr": [2e-3]})
    assert two.points()[0][0] == "train.lr0.001-finetune.lr0.002"


def test_toml_round_trip(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        'name = "t"\npreset = "tiny"\n[grid]\n"data.sampler.alpha" = [0.0, 0.5]\n[resources]\ncpus = 0.5\ngpus = 0.25\n'
    )
    spec = load_spec(path)
    assert spec.resources == Resources(cpus=0.5, gpus=0.25) and spec.resources.torch_threads == 1
    assert load_spec(spec.to_dict()) == spec


@pytest.mark.parametrize(
    "table, field",
    [
        ({"name": "x"}, "preset"),  # no base
        ({"name": "x", "preset": "tiny", "finetune": {"base_run": "r"}}, "preset"),  # two bases
        ({"name": "x", "preset": "nope"}, "preset"),
        ({"name": "a b", "preset": "tiny"}, "name"),
        ({"name": "x", "preset": "tiny", "grid": {"seed": []}}, "grid.seed"),
        ({"name": "x", "preset": "tiny", "grid": {"seed": [1, 1]}}, "grid.seed"),
        ({"name": "x", "preset": "tiny", "grid": {"seed": [1]}, "cases": [{"seed": 2}]}, "cases"),
        ({"name": "x", "preset": "tiny", "resources": {"gpus": -1}}, "resources.gpus"),
        ({"name": "x", "preset": "tiny", "resources": {"memory": 1}}, "resources.memory"),
        ({"name": "x", "preset": "tiny", "grdi": {}}, "grdi"),
        ({"name": "x", "finetune": {"base_run": "r", "n_new": 3}}, "finetune.n_new"),
        ({"name": "x", "preset": "tiny", "trial_name": "same", "grid": {"seed": [0, 1]}}, "trial_name"),
    ],
)
def test_bad_specs_name_the_field(table, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        load_spec(table)


def test_bad_files(tmp_path):
    with pytest.raises(ValueError, match="neither a file nor a shipped spec"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_spec(bad)


def test_shipped_specs_parse():
    names = shipped_specs()
    assert {"cpu/scaling", "cpu/alpha", "cpu/curricula", "cpu/finetune", "gpu/scaling"} <= set(names)
    for name in names:
        assert load_spec(name).points()
