"""workbench.config: defaults follow the study (docs/method.md), validation names the field, round trips, baseline."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from workbench.config import (
    PRESETS,
    SHIPPED_POOL_SIZES,
    DataConfig,
    FinetuneConfig,
    PoolSizes,
    RunConfig,
    SamplerConfig,
    preset,
)
from workbench.data.templates import ATTRIBUTES


def test_defaults_follow_the_study():
    d = DataConfig()
    assert d.n_individuals == 64_000 and d.n_heldout == 16_000
    assert d.attributes == ATTRIBUTES and len(d.attributes) == 6
    assert d.n_templates == 25 and d.n_train_templates == 20
    assert dataclasses.asdict(d.pool_sizes) == SHIPPED_POOL_SIZES
    # the pools of docs/method.md §1.2: 900 first names, 1000 surnames, 800 cities, 200 universities, 100 majors,
    # 500 companies, birth years 1900-2100
    assert (
        d.pool_sizes.first_names,
        d.pool_sizes.last_names,
        d.pool_sizes.cities,
        d.pool_sizes.universities,
        d.pool_sizes.majors,
        d.pool_sizes.companies,
    ) == (900, 1000, 800, 200, 100, 500)
    assert d.pool_sizes.years == 2100 - 1900 + 1


def test_check_indices_is_the_one_index_check():
    """One check for lists of indices (config fields and patched layers/heads): sorted, distinct, in range;
    with `n`, bounded by it and empty meaning all."""
    from workbench.config import check_indices
    from workbench.patching import hooks

    assert check_indices("retrieval.steps", (30, 10)) == [10, 30]
    assert check_indices("layers", None, n=3) == check_indices("layers", (), n=3) == [0, 1, 2]
    assert check_indices("layers", [2, 0], n=3) == [0, 2]
    with pytest.raises(ValueError, match=r"patch.layers\[\]=3 is out of range: allowed an integer in \[0, 2\]"):
        check_indices("patch.layers", (3,), n=3)
    with pytest.raises(ValueError, match=r"heads\[\]=True is out of range"):
        check_indices("heads", [True], n=2)
    with pytest.raises(ValueError, match="allowed distinct indices"):
        check_indices("heads", [1, 1], n=2)
    assert not hasattr(hooks, "validate_indices")  # the second copy is gone


def test_n_values_per_attribute():
    p = PoolSizes(first_names=5, last_names=5, cities=7, universities=3, majors=4, companies=6, years=2)
    d = DataConfig(n_individuals=10, n_heldout=0, pool_sizes=p)
    assert d.n_values == {
        "birth_date": 2 * 12 * 31,
        "birth_city": 7,
        "university": 3,
        "major": 4,
        "company": 6,
        "current_location": 7,
    }
    sub = DataConfig(n_individuals=10, n_heldout=0, pool_sizes=p, attributes=("company", "birth_city"))
    assert sub.n_values == {"company": 6, "birth_city": 7}


def test_no_knowledge_baseline_by_hand():
    d = DataConfig(
        n_individuals=10, n_heldout=0, attributes=("major", "company"), pool_sizes=PoolSizes(majors=10, companies=20)
    )
    assert d.no_knowledge_baseline == pytest.approx((math.log(10) + math.log(20)) / 2, rel=1e-12)


def test_no_knowledge_baseline_default_is_mean_over_six_attributes():
    d = DataConfig()
    by_hand = (
        math.log(201 * 12 * 31) + math.log(800) + math.log(200) + math.log(100) + math.log(500) + math.log(800)
    ) / 6
    assert d.no_knowledge_baseline == pytest.approx(by_hand, rel=1e-12)


def test_n_individuals_limit_is_number_of_distinct_names():
    p = PoolSizes(first_names=2, last_names=3)
    limit = 2 * 2 * 3
    DataConfig(n_individuals=limit, n_heldout=0, pool_sizes=p)  # exactly at the limit is fine
    with pytest.raises(ValueError, match="n_individuals"):
        DataConfig(n_individuals=limit + 1, n_heldout=0, pool_sizes=p)
    with pytest.raises(ValueError, match="n_heldout"):
        DataConfig(n_individuals=limit - 1, n_heldout=2, pool_sizes=p)
    with pytest.raises(ValueError, match="n_finetune"):
        DataConfig(n_individuals=limit - 2, n_heldout=1, n_finetune=2, pool_sizes=p)


def test_n_individuals_above_name_space_at_default_pools():
    with pytest.raises(ValueError, match="n_individuals"):
        DataConfig(n_individuals=900 * 900 * 1000 + 1, n_heldout=0)


@pytest.mark.parametrize("name, size", sorted(SHIPPED_POOL_SIZES.items()))
def test_pool_size_above_shipped_raises(name, size):
    PoolSizes(**{name: size})
    with pytest.raises(ValueError, match=f"pool_sizes.{name}"):
        PoolSizes(**{name: size + 1})
    with pytest.raises(ValueError, match=f"pool_sizes.{name}"):
        PoolSizes(**{name: 0})


def test_pool_size_cities_801():
    with pytest.raises(ValueError, match="pool_sizes.cities"):
        PoolSizes(cities=801)


def test_alpha_below_zero_raises():
    SamplerConfig(kind="power_law", alpha=0.0)
    with pytest.raises(ValueError, match="alpha"):
        SamplerConfig(kind="power_law", alpha=-0.1)


def test_unknown_sampler_kind_raises():
    with pytest.raises(ValueError, match="sampler.kind"):
        SamplerConfig(kind="zipf")


def test_n_celebrities_above_population_raises():
    ok = SamplerConfig(kind="celebrities", n_celebrities=10)
    DataConfig(n_individuals=10, n_heldout=0, sampler=ok)
    with pytest.raises(ValueError, match="n_celebrities"):
        DataConfig(n_individuals=9, n_heldout=0, sampler=ok)


def test_indiv_warmup_above_population_raises():
    ok = SamplerConfig(kind="warmup", indiv_warmup=10)
    DataConfig(n_individuals=10, n_heldout=0, sampler=ok)
    with pytest.raises(ValueError, match="indiv_warmup"):
        DataConfig(n_individuals=9, n_heldout=0, sampler=ok)


def test_n_groups_above_population_raises():
    with pytest.raises(ValueError, match="n_groups"):
        DataConfig(n_individuals=3, n_heldout=0, sampler=SamplerConfig(kind="sequential", n_groups=4))


def test_unknown_attribute_raises():
    with pytest.raises(ValueError, match="attributes"):
        DataConfig(n_individuals=10, n_heldout=0, attributes=("major", "shoe_size"))
    with pytest.raises(ValueError, match="attributes"):
        DataConfig(n_individuals=10, n_heldout=0, attributes=("major", "major"))
    with pytest.raises(ValueError, match="attributes"):
        DataConfig(n_individuals=10, n_heldout=0, attributes=())


def test_template_counts_validated():
    with pytest.raises(ValueError, match="n_templates"):
        DataConfig(n_individuals=10, n_heldout=0, n_templates=0)
    with pytest.raises(ValueError, match="n_templates"):
        DataConfig(n_individuals=10, n_heldout=0, n_templates=26)
    with pytest.raises(ValueError, match="n_train_templates"):
        DataConfig(n_individuals=10, n_heldout=0, n_train_templates=0)
    # at least one evaluation template must remain
    with pytest.raises(ValueError, match="n_train_templates"):
        DataConfig(n_individuals=10, n_heldout=0, n_templates=10, n_train_templates=10)
    DataConfig(n_individuals=10, n_heldout=0, n_templates=10, n_train_templates=9)


def test_error_message_names_allowed_range():
    with pytest.raises(ValueError) as e:
        PoolSizes(cities=801)
    assert "801" in str(e.value) and "800" in str(e.value)


def test_finetune_n_new_limited_by_n_finetune():
    data = DataConfig(n_individuals=10, n_heldout=0, n_finetune=5)
    RunConfig(data=data, finetune=FinetuneConfig(base_run="x", n_new=5))
    with pytest.raises(ValueError, match="n_new"):
        RunConfig(data=data, finetune=FinetuneConfig(base_run="x", n_new=6))


def test_configs_are_frozen():
    d = DataConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.n_individuals = 5  # type: ignore[misc]


@pytest.mark.parametrize("name", PRESETS)
def test_round_trip_through_dict(name):
    cfg = preset(name)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("name", PRESETS)
def test_round_trip_through_json(name):
    # config.json is how a run stores its config: tuples come back as lists
    cfg = preset(name).replace(data={"attributes": ("major", "birth_date")}, train={"checkpoint_steps": (1, 5)})
    back = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    assert back.data.attributes == ("major", "birth_date") and back.train.checkpoint_steps == (1, 5)


def test_round_trip_with_nested_sections():
    cfg = preset("tiny").replace(
        data={"attributes": ("major", "company"), "sampler": SamplerConfig(kind="celebrities", n_celebrities=3)},
        finetune=FinetuneConfig(base_run="runs/base", n_new=4, replay_weight=0.5),
    )
    back = RunConfig.from_dict(cfg.to_dict())
    assert back == cfg
    assert isinstance(back.data.sampler, SamplerConfig) and isinstance(back.data.pool_sizes, PoolSizes)
    assert back.data.attributes == ("major", "company")


def test_from_dict_unknown_key_raises_naming_it():
    d = preset("tiny").to_dict()
    d["learning_rate"] = 1.0
    with pytest.raises(ValueError, match="learning_rate"):
        RunConfig.from_dict(d)
    d = preset("tiny").to_dict()
    d["data"]["n_people"] = 3
    with pytest.raises(ValueError, match="n_people"):
        RunConfig.from_dict(d)
    d = preset("tiny").to_dict()
    d["data"]["pool_sizes"]["planets"] = 3
    with pytest.raises(ValueError, match="planets"):
        RunConfig.from_dict(d)


def test_from_dict_revalidates():
    d = preset("tiny").to_dict()
    d["data"]["pool_sizes"]["cities"] = 801
    with pytest.raises(ValueError, match="pool_sizes.cities"):
        RunConfig.from_dict(d)


def test_preset_replace_and_unknown_preset():
    cfg = preset("tiny", train={"steps": 5}, data={"n_individuals": 50})
    assert cfg.train.steps == 5 and cfg.data.n_individuals == 50
    assert cfg.data.pool_sizes == preset("tiny").data.pool_sizes  # untouched fields kept
    with pytest.raises(ValueError, match="preset"):
        preset("huge")


def test_replace_validates():
    with pytest.raises(ValueError, match="n_individuals"):
        preset("tiny", data={"n_individuals": 0})


def test_from_dict_missing_section_raises_naming_it():
    d = preset("tiny").to_dict()
    del d["train"]
    with pytest.raises(ValueError, match=r"section\(s\) \['train'\] missing"):
        RunConfig.from_dict(d)


def test_from_dict_missing_field_takes_the_default_that_reproduces_older_runs():
    d = preset("tiny").to_dict()
    del d["train"]["grad_clip"]  # a config.json written before the field existed
    assert RunConfig.from_dict(d).train.grad_clip == 1.0


@pytest.mark.parametrize("path", ["train.steps", "train.eval_every", "train.n_checkpoints", "checkpoint_steps"])
def test_absurd_step_counts_are_refused(path):
    if path == "checkpoint_steps":
        with pytest.raises(ValueError, match=r"train.checkpoint_steps\[\]=.*allowed an integer in \[0, 100000000\]"):
            preset("tiny", train={"checkpoint_steps": (10**30,)})
        return
    section, name = path.split(".")
    with pytest.raises(ValueError, match=rf"{path}=10+ is out of range: allowed an integer in \[\d, 100000000\]"):
        preset("tiny", **{section: {name: 10**30}})


def test_assign_is_typed_and_names_the_path():
    from workbench.config import assign

    cfg = assign(preset("tiny"), {"train.lr": 1, "train.checkpoint_steps": [0, 20], "data.sampler.alpha": 0})
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float) and cfg.train.checkpoint_steps == (0, 20)
    with pytest.raises(ValueError, match=r"^train.bogus: unknown field; allowed steps, "):
        assign(preset("tiny"), {"train.bogus": 1})
    with pytest.raises(ValueError, match=r"^train.steps='10' is out of range"):
        assign(preset("tiny"), {"train.steps": "10"})


def test_config_imports_nothing_above_it():
    """The config package is the bottom layer: it imports no other workbench module."""
    import ast
    from pathlib import Path

    import workbench.config as c

    for f in Path(c.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("workbench"):
                assert node.module.startswith("workbench.config"), f"{f.name} imports {node.module}"
