"""`workbench data stats` and `workbench data sample` through workbench.cli.main."""

from __future__ import annotations

import json
import re

import pytest

from workbench.cli import main
from workbench.config import preset
from workbench.data.biography_data import BiographyData


def test_data_stats_json(capsys):
    assert main(["data", "stats", "--preset", "tiny"]) == 0
    out = json.loads(capsys.readouterr().out)
    d = preset("tiny").data
    p = d.pool_sizes
    assert out["pool_sizes"] == {
        "first_names": p.first_names,
        "last_names": p.last_names,
        "cities": p.cities,
        "universities": p.universities,
        "majors": p.majors,
        "companies": p.companies,
        "years": p.years,
    }
    assert out["templates_per_attribute"] == {a: d.n_templates for a in d.attributes}
    assert out["no_knowledge_baseline"] == pytest.approx(d.no_knowledge_baseline, rel=1e-12)
    assert out["n_individuals"] == d.n_individuals and out["n_heldout"] == d.n_heldout


def test_data_stats_follows_overrides(capsys):
    assert main(["data", "stats", "--preset", "tiny", "--n-individuals", "40", "--seed", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_individuals"] == 40


def test_data_stats_bad_input_names_field(capsys):
    assert main(["data", "stats", "--preset", "tiny", "--n-individuals", "0"]) == 2
    err = capsys.readouterr().err
    assert "n_individuals" in err
    assert main(["data", "stats", "--preset", "enormous"]) == 2
    assert "preset" in capsys.readouterr().err


def _biography_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if re.match(r"^\d+\. ", line)]


def test_data_sample_three(capsys):
    assert main(["data", "sample", "-n", "3", "--preset", "tiny"]) == 0
    lines = _biography_lines(capsys.readouterr().out)
    assert [line.split(".", 1)[0] for line in lines] == ["1", "2", "3"]
    data = BiographyData(preset("tiny"))
    names = {data.population.full_name(i) for i in data.population.seen}
    n_attr = len(data.config.data.attributes)
    for line in lines:
        marked_names = re.findall(r"\[\[(.+?)\]\]", line)
        values = re.findall(r"<<(.+?)>>", line)
        assert len(marked_names) == n_attr and len(set(marked_names)) == 1  # one person, every sentence
        assert marked_names[0] in names
        assert len(values) == n_attr
        ind = next(i for i in data.population.seen if data.population.full_name(i) == marked_names[0])
        assert sorted(values) == sorted(data.population.describe(ind)[a] for a in data.config.data.attributes)


def test_data_sample_matches_the_training_batch(capsys):
    assert main(["data", "sample", "-n", "2", "--preset", "tiny"]) == 0
    lines = _biography_lines(capsys.readouterr().out)
    data = BiographyData(preset("tiny"))
    batch = data.train_batch(0)
    for i, line in enumerate(lines):
        plain = re.sub(r"\[\[|\]\]|<<|>>", "", line.split(". ", 1)[1])
        assert plain == data.biographer.text(batch, i).strip()


def test_data_sample_more_than_a_batch(capsys):
    n = preset("tiny").train.batch_size + 4
    assert main(["data", "sample", "-n", str(n), "--preset", "tiny"]) == 0
    assert len(_biography_lines(capsys.readouterr().out)) == n


def test_data_sample_rejects_zero(capsys):
    assert main(["data", "sample", "-n", "0", "--preset", "tiny"]) == 2
    assert "-n" in capsys.readouterr().err
