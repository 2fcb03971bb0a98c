"""`SequenceEdit`: remove or duplicate given training sequences, each addressed as (step, row).

The causal test of data attribution retrains a twin (same seed: same initial weights, same batches)
with some training sequences removed or duplicated. A batch is first drawn exactly as without the
edit (so every other sequence is unchanged), then its rows are selected: a removed row is left out,
a duplicated one appears twice. The training loss is the mean over the batch's tokens, so this is
the objective with that sequence's term removed or counted twice. Batches stay a pure function of
(seed, step): the edit is fixed before training and consulted per step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _pairs(name: str, pairs, batch_size: int) -> np.ndarray:
    a = np.asarray(pairs, dtype=np.int64).reshape(-1, 2) if len(pairs) else np.zeros((0, 2), dtype=np.int64)
    if (a[:, 0] < 0).any():
        raise ValueError(f"{name}: a step is negative: allowed steps >= 0")
    if ((a[:, 1] < 0) | (a[:, 1] >= batch_size)).any():
        raise ValueError(f"{name}: a row is out of range: allowed rows in [0, {batch_size - 1}]")
    if len(np.unique(a, axis=0)) != len(a):
        raise ValueError(f"{name}: a (step, row) pair repeats: allowed distinct pairs")
    return a


@dataclass(frozen=True, eq=False)
class SequenceEdit:
    """(step, row) pairs to remove from, or duplicate in, their training batch; validated on construction."""

    batch_size: int
    remove: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))  # [n, 2] (step, row)
    duplicate: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))

    def __post_init__(self) -> None:
        object.__setattr__(self, "remove", _pairs("edit.remove", self.remove, self.batch_size))
        object.__setattr__(self, "duplicate", _pairs("edit.duplicate", self.duplicate, self.batch_size))
        both = {tuple(p) for p in self.remove.tolist()} & {tuple(p) for p in self.duplicate.tolist()}
        if both:
            raise ValueError(f"edit: (step, row)={min(both)} is both removed and duplicated: allowed one of the two")
        steps, counts = np.unique(self.remove[:, 0], return_counts=True)
        if (counts >= self.batch_size).any():
            raise ValueError(
                f"edit.remove empties the batch of step {int(steps[counts >= self.batch_size][0])}: "
                f"allowed at most {self.batch_size - 1} rows removed per step"
            )
        by_step: dict[int, np.ndarray] = {}
        for s in np.unique(np.concatenate([self.remove[:, 0], self.duplicate[:, 0]])).tolist():
            count = np.ones(self.batch_size, dtype=np.int64)
            count[self.remove[self.remove[:, 0] == s, 1]] = 0
            count[self.duplicate[self.duplicate[:, 0] == s, 1]] = 2
            by_step[s] = np.repeat(np.arange(self.batch_size), count)
        object.__setattr__(self, "_by_step", by_step)

    def rows(self, step: int) -> np.ndarray | None:
        """The rows of step `step`'s batch to train on, in order (a duplicate next to its original), or
        None when the step is not edited."""
        return self._by_step.get(step)

    @property
    def steps(self) -> list[int]:
        """The edited steps, ascending."""
        return sorted(self._by_step)

    def __len__(self) -> int:
        return len(self.remove) + len(self.duplicate)
