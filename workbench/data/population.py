"""Populations of individuals: unique full names, independently sampled attributes, template splits.

One `Population` holds every individual of a run in one set of arrays, ordered
[seen (pre-training) | held-out | new (fine-tuning) | context-only]; each is an index range.
Generation is chunked and seeded per chunk, so it is prefix-stable: asking for more held-out or
new individuals never changes the ones before them (a fine-tuning run sees exactly the same
pre-training population as its base run).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from workbench.config import DataConfig
from workbench.data.planted import plant
from workbench.data.pools import Pools
from workbench.data.templates import ATTRIBUTES

_CHUNK = 4096
_STREAM_NAMES, _STREAM_ATTRIBUTES = 1, 2

# The study's groups of individuals, one definition for the whole workbench: "seen" (the
# pre-training population), "heldout" (never trained on: hallucination), "new" (fine-tuning).
GROUPS: tuple[str, ...] = ("seen", "heldout", "new")
GROUP_LABELS = {"seen": "seen individuals", "heldout": "held-out individuals", "new": "new individuals"}
_OLD_NAMES = {"train": "seen", "finetune": "new"}  # names used before the vocabulary was unified


def check_group(name: str) -> str:
    """`name` if it is one of GROUPS, else a ValueError naming the allowed groups."""
    if name not in GROUPS:
        hint = f" ('{name}' is now '{_OLD_NAMES[name]}')" if name in _OLD_NAMES else ""
        raise ValueError(f"group={name!r} is out of range: allowed {' | '.join(GROUPS)}{hint}")
    return name


def column_prefix(group: str) -> str:
    """The metrics-column prefix of a group: '' for seen individuals (the study's attribute loss and
    accuracy are defined on them), '<group>_' otherwise (heldout_attribute_loss, new_...)."""
    return "" if check_group(group) == "seen" else f"{group}_"


@dataclass(frozen=True)
class Population:
    """All individuals of a run. Arrays are indexed by a global individual id."""

    config: DataConfig
    pools: Pools
    names: np.ndarray  # [n_total, 3] int32: first, middle (both first-name pool), last
    values: np.ndarray  # [n_total, n_attributes] int32 value indices, columns = config.attributes
    template_order: np.ndarray  # [n_total, n_attributes, n_templates] uint8: first n_train = training

    @property
    def seen(self) -> range:
        return range(0, self.config.n_individuals)

    @property
    def heldout(self) -> range:
        n = self.config.n_individuals
        return range(n, n + self.config.n_heldout)

    @property
    def new(self) -> range:
        n = self.config.n_individuals + self.config.n_heldout
        return range(n, n + self.config.n_finetune)

    @property
    def context(self) -> range:
        """Context-only individuals (data.packing.n_context): only ever in packed training sequences, twice; never
        evaluated, never in a datastore (not one of GROUPS)."""
        n = self.config.n_individuals + self.config.n_heldout + self.config.n_finetune
        return range(n, n + self.config.packing.n_context)

    def group(self, name: str) -> range:
        """The individuals of a group (see GROUPS): 'seen', 'heldout' or 'new'."""
        return getattr(self, check_group(name))

    def training_templates(self, individual: int, attribute: int) -> np.ndarray:
        return self.template_order[individual, attribute, : self.config.n_train_templates]

    def evaluation_templates(self, individual: int, attribute: int) -> np.ndarray:
        return self.template_order[individual, attribute, self.config.n_train_templates :]

    def full_name(self, individual: int) -> str:
        return self.pools.full_name(*self.names[individual])

    def describe(self, individual: int) -> dict[str, str]:
        """The individual's name and attribute value strings."""
        out = {"name": self.full_name(individual)}
        for j, a in enumerate(self.config.attributes):
            out[a] = self.pools.value(a, self.values[individual, j])
        return out

    def fingerprint(self, group: str = "seen") -> str:
        """A short hash of a group's names, values and template splits (identifies a population)."""
        r = self.group(group)
        h = hashlib.sha256()
        for arr in (self.names[r.start : r.stop], self.values[r.start : r.stop], self.template_order[r.start : r.stop]):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:16]


def make_population(config: DataConfig, seed: int) -> Population:
    """Generate every individual of a run from one seed (see module docstring)."""
    pools = Pools.from_sizes(config.pool_sizes)
    total = config.n_individuals + config.n_heldout + config.n_finetune + config.packing.n_context
    n_chunks = -(-total // _CHUNK)
    names = _unique_names(pools, total, seed)
    values, orders = [], []
    for c in range(n_chunks):
        rng = np.random.default_rng([seed, _STREAM_ATTRIBUTES, c])
        # all six attributes are always drawn, in the canonical order, so a subset config sees the
        # same values for the attributes it keeps
        vals = np.stack([rng.integers(pools.n_values(a), size=_CHUNK) for a in ATTRIBUTES], axis=1)
        order = np.argsort(rng.random((_CHUNK, len(ATTRIBUTES), config.n_templates)), axis=2)
        values.append(vals)
        orders.append(order)
    cols = [ATTRIBUTES.index(a) for a in config.attributes]
    values_arr = np.concatenate(values)[:total, cols].astype(np.int32)
    order_arr = np.concatenate(orders)[:total][:, cols].astype(np.uint8)
    if config.n_planted:
        names, values_arr = plant(names, values_arr, pools, config, seed)
    return Population(config, pools, names, values_arr, order_arr)


def _unique_names(pools: Pools, total: int, seed: int) -> np.ndarray:
    n_first, n_last = len(pools.first_names), len(pools.last_names)
    seen: set[int] = set()
    codes: list[int] = []
    c = 0
    while len(codes) < total:
        rng = np.random.default_rng([seed, _STREAM_NAMES, c])
        f = rng.integers(n_first, size=_CHUNK, dtype=np.int64)
        m = rng.integers(n_first, size=_CHUNK, dtype=np.int64)
        last = rng.integers(n_last, size=_CHUNK, dtype=np.int64)
        for code in ((f * n_first + m) * n_last + last).tolist():
            if code not in seen:
                seen.add(code)
                codes.append(code)
        c += 1
        if c > 64 + 64 * (total // _CHUNK):  # only reachable when names are nearly exhausted
            raise ValueError(f"could not draw {total} unique names from the configured pools")
    arr = np.array(codes[:total], dtype=np.int64)
    first_middle, last = np.divmod(arr, n_last)
    first, middle = np.divmod(first_middle, n_first)
    return np.stack([first, middle, last], axis=1).astype(np.int32)
