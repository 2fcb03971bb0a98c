"""A planted sub-population whose values follow from the name: the positive control of data attribution.

The first `n_planted` seen individuals take their first name from a reserved set of `planted_names` first names
(pool indices 0 .. planted_names - 1) that no other individual carries, and each of their attribute values is a
fixed, seeded function of that first name. Their facts follow from one name token by a rule that many individuals
share, so each of their sequences pushes the model to read the name at the attribute's position, the recall head's
job (docs/method.md §6.1): a subset that drives the head sequence by sequence, which a first-order influence
should rank first. Off by default (n_planted = 0: populations are unchanged). Prefix-stable like the population:
every draw is per row or from a stream of its own.
"""

from __future__ import annotations

import numpy as np

_STREAM = 5  # the population's streams are 1 (names) and 2 (attributes)


def plant(names: np.ndarray, values: np.ndarray, pools, config, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(names, values) with the first `config.n_planted` rows planted (module docstring); copies. `pools`: the
    population's name and value pools; `config`: its DataConfig (values' columns are `config.attributes`)."""
    n, k = config.n_planted, config.planted_names
    n_first, n_last = len(pools.first_names), len(pools.last_names)
    n_values = [pools.n_values(a) for a in config.attributes]
    names, values = names.copy(), values.copy()
    total = len(names)
    moved = (np.arange(total) >= n) & (names[:, 0] < k)  # everyone else leaves the reserved first names
    names[moved, 0] = np.random.default_rng([seed, _STREAM, 1]).integers(k, n_first, size=total)[moved]
    names[:n, 0] = np.random.default_rng([seed, _STREAM, 2]).integers(k, size=n)
    _unique(names, n_first, n_last, seed)
    rules = [np.random.default_rng([seed, _STREAM, 3, j]).integers(v, size=k) for j, v in enumerate(n_values)]
    table = np.stack(rules, 1)  # [planted_names, n_attributes]: the values each reserved first name implies
    values[:n] = table[names[:n, 0]]
    return names, values


def _unique(names: np.ndarray, n_first: int, n_last: int, seed: int) -> None:
    """Full names unique again after the first names changed: a repeat (the later row) redraws its last name."""
    for attempt in range(64):
        codes = (names[:, 0].astype(np.int64) * n_first + names[:, 1]) * n_last + names[:, 2]
        first_rows = np.unique(codes, return_index=True)[1]
        repeats = np.setdiff1d(np.arange(len(names)), first_rows)
        if not len(repeats):
            return
        for row in repeats:
            names[row, 2] = np.random.default_rng([seed, _STREAM, 4, row, attempt]).integers(n_last)
    raise ValueError("could not keep full names unique with the planted first names: allowed larger name pools")
