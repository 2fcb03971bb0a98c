"""Value pools shipped with the package (no network at run time) and the attribute value strings.

Each pool is a text file under `pools/` (source in SOURCES.md), read once; a config uses the first k
entries. Birth dates are not a file: year, month and day are sampled independently (impossible dates
such as "February 31" are allowed, as in the study) and written like "March 16, 2042".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

from workbench.config import PoolSizes

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
FIRST_YEAR = 1900
N_DAYS = 31
DATE_VALUES_PER_YEAR = len(MONTHS) * N_DAYS

# attribute -> pool file; birth_date is generated (see module docstring)
ATTRIBUTE_POOL = {
    "birth_city": "cities",
    "university": "universities",
    "major": "majors",
    "company": "companies",
    "current_location": "cities",
}


@cache
def read_pool(name: str) -> tuple[str, ...]:
    """All shipped entries of a pool, in file order (most common / largest first)."""
    text = resources.files("workbench.data").joinpath("pools", f"{name}.txt").read_text("utf-8")
    values = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    if len({v.casefold() for v in values}) != len(values):
        raise ValueError(f"pool {name!r} has duplicate values; pools must be unambiguous")
    return values


@dataclass(frozen=True)
class Pools:
    """The pools a config uses: the first `pool_sizes.<name>` entries of each shipped file."""

    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    cities: tuple[str, ...]
    universities: tuple[str, ...]
    majors: tuple[str, ...]
    companies: tuple[str, ...]
    years: tuple[str, ...]

    @classmethod
    def from_sizes(cls, sizes: PoolSizes) -> "Pools":
        def take(name: str) -> tuple[str, ...]:
            pool = read_pool(name)
            k = getattr(sizes, name)
            if k > len(pool):
                raise ValueError(f"pool_sizes.{name}={k} is out of range: allowed [1, {len(pool)}]")
            return pool[:k]

        years = tuple(str(FIRST_YEAR + i) for i in range(sizes.years))
        return cls(
            take("first_names"),
            take("last_names"),
            take("cities"),
            take("universities"),
            take("majors"),
            take("companies"),
            years,
        )

    def n_values(self, attribute: str) -> int:
        if attribute == "birth_date":
            return len(self.years) * DATE_VALUES_PER_YEAR
        return len(getattr(self, ATTRIBUTE_POOL[attribute]))

    def value(self, attribute: str, index: int) -> str:
        """The attribute value string for a value index (dates: year-major, then month, day)."""
        if attribute == "birth_date":
            year, month, day = split_date(index)
            return f"{MONTHS[month]} {day + 1}, {self.years[year]}"
        return getattr(self, ATTRIBUTE_POOL[attribute])[index]

    def full_name(self, first: int, middle: int, last: int) -> str:
        return f"{self.first_names[first]} {self.first_names[middle]} {self.last_names[last]}"


def split_date(index: int) -> tuple[int, int, int]:
    """Date value index -> (year index, month index 0-11, day index 0-30)."""
    year, rest = divmod(int(index), DATE_VALUES_PER_YEAR)
    month, day = divmod(rest, N_DAYS)
    return year, month, day
