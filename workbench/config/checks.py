"""Validation helpers shared by every config and feature: one-line errors naming the field and the allowed range.

Each raises `ValueError("FIELD=VALUE is out of range: allowed ...")` unless its condition holds, so bad input
fails before any compute with a message a user can act on.
"""

from __future__ import annotations

import math
from typing import Any


def check(cond: bool, name: str, allowed: str, value: Any) -> None:
    """Raise a ValueError naming the field, its value and the allowed range unless `cond`."""
    if not cond:
        raise ValueError(f"{name}={value!r} is out of range: allowed {allowed}")


def check_int(name: str, value: Any, lo: int, hi: int | float = math.inf) -> None:
    """An integer (not a bool) in [lo, hi]."""
    ok = isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi
    check(ok, name, f"an integer in [{lo}, {hi if hi != math.inf else 'inf'}]", value)


def check_number(
    name: str, value: Any, lo: int | float, hi: int | float = math.inf, lo_open: bool = False, hi_open: bool = False
) -> None:
    """A finite int or float (not a bool) in the interval [lo, hi], either end optionally open."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (lo < value if lo_open else lo <= value) and (value < hi if hi_open else value <= hi)
    lo_s, hi_s = f"({lo}" if lo_open else f"[{lo}", f"{hi})" if hi_open else f"{hi if hi != math.inf else 'inf'}]"
    check(ok, name, f"a number in {lo_s}, {hi_s}", value)


def check_indices(name: str, values, lo: int = 0, hi: int | float = math.inf, n: int | None = None) -> list[int]:
    """Every entry an integer (not a bool) in [lo, hi], no repeats; returns them sorted. With `n`, the number
    of things indexed (a model's layers, heads): entries lie in [lo, n - 1], and None or no entries mean all
    of range(n)."""
    if n is not None:
        if values is None or len(values) == 0:
            return list(range(n))
        hi = min(hi, n - 1)
    for v in values:
        check_int(f"{name}[]", v, lo, hi)
    check(len(set(values)) == len(values), name, "distinct indices", values)
    return sorted(values)
