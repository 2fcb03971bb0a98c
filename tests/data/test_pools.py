"""workbench.data.pools: shipped pools, first-k truncation, value strings and dates."""

from __future__ import annotations

import pytest

from workbench.config import SHIPPED_POOL_SIZES, PoolSizes
from workbench.data.pools import (
    ATTRIBUTE_POOL,
    DATE_VALUES_PER_YEAR,
    FIRST_YEAR,
    MONTHS,
    Pools,
    read_pool,
    split_date,
)

FILE_POOLS = ("first_names", "last_names", "cities", "universities", "majors", "companies")


@pytest.mark.parametrize(
    "name, size",
    [
        ("first_names", 900),
        ("last_names", 1000),
        ("cities", 800),
        ("universities", 200),
        ("majors", 100),
        ("companies", 500),
    ],
)
def test_shipped_sizes_exact(name, size):
    assert len(read_pool(name)) == size
    assert SHIPPED_POOL_SIZES[name] == size


@pytest.mark.parametrize("name", FILE_POOLS)
def test_no_duplicates_no_blanks(name):
    pool = read_pool(name)
    assert len(set(pool)) == len(pool)
    assert len({v.casefold() for v in pool}) == len(pool)
    for v in pool:
        assert v and v == v.strip() and "  " not in v, repr(v)
        assert not v.startswith("#")


@pytest.mark.parametrize("name", FILE_POOLS)
def test_ascii_only(name):
    # SOURCES.md promises ASCII-only pools
    for v in read_pool(name):
        assert v.isascii(), repr(v)


def test_name_pools_are_single_words():
    # full names are "first middle last" joined by spaces: a space inside a name part would make
    # different (first, middle, last) triples print the same
    for v in read_pool("first_names") + read_pool("last_names"):
        assert " " not in v, repr(v)


def test_full_pools_by_default():
    pools = Pools.from_sizes(PoolSizes())
    for name in FILE_POOLS:
        assert getattr(pools, name) == read_pool(name)
    assert pools.years == tuple(str(y) for y in range(1900, 2101))


def test_first_k_truncation():
    sizes = PoolSizes(first_names=7, last_names=11, cities=3, universities=5, majors=2, companies=13, years=4)
    pools = Pools.from_sizes(sizes)
    for name in FILE_POOLS:
        k = getattr(sizes, name)
        assert len(getattr(pools, name)) == k
        assert getattr(pools, name) == read_pool(name)[:k]
    assert pools.years == tuple(str(FIRST_YEAR + i) for i in range(4))


def test_n_values():
    sizes = PoolSizes(cities=3, universities=5, majors=2, companies=13, years=4)
    pools = Pools.from_sizes(sizes)
    assert pools.n_values("birth_date") == 4 * 12 * 31
    assert pools.n_values("birth_city") == pools.n_values("current_location") == 3
    assert pools.n_values("university") == 5
    assert pools.n_values("major") == 2
    assert pools.n_values("company") == 13


def test_value_strings_for_pooled_attributes():
    pools = Pools.from_sizes(PoolSizes())
    for attribute, pool in ATTRIBUTE_POOL.items():
        values = read_pool(pool)
        assert [pools.value(attribute, i) for i in range(len(values))] == list(values)


def test_dates_enumerate_every_year_month_day_once():
    pools = Pools.from_sizes(PoolSizes(years=3))
    n = pools.n_values("birth_date")
    strings = [pools.value("birth_date", i) for i in range(n)]
    assert len(set(strings)) == n
    expected = {f"{m} {d}, {y}" for y in (1900, 1901, 1902) for m in MONTHS for d in range(1, 32)}
    assert set(strings) == expected
    # impossible dates are allowed (docs/method.md §1.2: day sampled independently of month)
    assert "February 31, 1901" in expected


def test_date_formatting_and_order():
    pools = Pools.from_sizes(PoolSizes())
    assert pools.value("birth_date", 0) == "January 1, 1900"
    assert pools.value("birth_date", pools.n_values("birth_date") - 1) == "December 31, 2100"
    # year-major, then month, then day
    assert pools.value("birth_date", 31) == "February 1, 1900"
    assert pools.value("birth_date", DATE_VALUES_PER_YEAR) == "January 1, 1901"


def test_split_date_inverts_index():
    for index in range(0, 201 * DATE_VALUES_PER_YEAR, 97):
        y, m, d = split_date(index)
        assert 0 <= m < 12 and 0 <= d < 31
        assert (y * 12 + m) * 31 + d == index


def test_full_name():
    pools = Pools.from_sizes(PoolSizes())
    fn, ln = read_pool("first_names"), read_pool("last_names")
    assert pools.full_name(3, 1, 7) == f"{fn[3]} {fn[1]} {ln[7]}"


def test_from_sizes_rejects_oversized_pool():
    with pytest.raises(ValueError, match="cities"):
        PoolSizes(cities=801)


def test_unknown_pool_file_fails():
    with pytest.raises(FileNotFoundError):
        read_pool("planets")
