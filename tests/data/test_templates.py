"""workbench.data.templates: 25 distinct templates per attribute, name before value, clean pieces."""

from __future__ import annotations

import re
import string

import pytest

from workbench.data.templates import ATTRIBUTES, TEMPLATES
from workbench.data.tokenizer import template_pieces


def test_six_attributes_in_canonical_order():
    assert ATTRIBUTES == ("birth_date", "birth_city", "university", "major", "company", "current_location")
    assert set(TEMPLATES) == set(ATTRIBUTES)


@pytest.mark.parametrize("attribute", ATTRIBUTES)
def test_25_distinct_templates(attribute):
    ts = TEMPLATES[attribute]
    assert len(ts) == 25
    assert len(set(ts)) == 25
    # distinct even ignoring case, punctuation and spacing
    norm = {re.sub(r"[\W_]+", " ", t.casefold()).strip() for t in ts}
    assert len(norm) == 25


@pytest.mark.parametrize("attribute", ATTRIBUTES)
def test_name_before_value_exactly_once(attribute):
    for t in TEMPLATES[attribute]:
        fields = [f for _, f, _, _ in string.Formatter().parse(t) if f is not None]
        assert fields == ["name", "value"], t


@pytest.mark.parametrize("attribute", ATTRIBUTES)
def test_templates_are_clean_sentences(attribute):
    for t in TEMPLATES[attribute]:
        assert t == t.strip() and "  " not in t, repr(t)
        assert t[0].isupper() or t.startswith("{name}"), t
        assert t.endswith("."), t
        # the name and the value are separate words, so they can be spliced as " Name" / " Value"
        assert re.search(r"(^|\s)\{name\}", t), t
        assert re.search(r"\s\{value\}", t), t
        # the value is followed by punctuation or a space, never glued to a word
        assert re.search(r"\{value\}($|[.,]|\s)", t), t


@pytest.mark.parametrize("attribute", ATTRIBUTES)
def test_pieces_reassemble_the_sentence(attribute):
    name, value = "Ada Mary Lovelace", "Some Value 12"
    for t in TEMPLATES[attribute]:
        prefix, between, after = template_pieces(t)
        assert prefix + " " + name + between + " " + value + after == " " + t.format(name=name, value=value)
        # pieces carry no stray whitespace at the splice points
        assert not prefix.endswith(" ") and not between.endswith(" ")
        assert prefix == "" or prefix.startswith(" ")


def test_template_pieces_example():
    assert template_pieces("Today, {name} works for {value}.") == (" Today,", " works for", ".")
    assert template_pieces("{name}'s birthday is {value}.") == ("", "'s birthday is", ".")
