"""Operational definition of the three phases, with bootstrap uncertainty.

With b the no-knowledge baseline and L(step) the attribute loss on seen individuals
(evaluation templates), and a relative tolerance tol (default 0.1):

* plateau start: the first evaluation at which L <= (1 + tol) * b (the loss has reached the
  baseline);
* plateau end: the first evaluation after the start at which L <= (1 - tol) * b (the loss has
  left the baseline downwards: knowledge is emerging);
* the plateau length is end - start. Boundaries are at evaluation resolution (eval_every steps).

Uncertainty: a bootstrap over the fixed evaluation set (resampling its sequences with replacement,
recomputing the curve and the boundaries, `n_boot` times) gives a 95% interval.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Phases:
    plateau_start: float  # step; nan when the loss never reached the baseline
    plateau_end: float  # step; nan when knowledge did not emerge in the run
    plateau_start_ci: tuple[float, float] = (np.nan, np.nan)
    plateau_end_ci: tuple[float, float] = (np.nan, np.nan)
    tol: float = 0.1

    @property
    def plateau_length(self) -> float:
        return self.plateau_end - self.plateau_start

    def to_dict(self) -> dict:
        return {**asdict(self), "plateau_length": self.plateau_length}


def boundaries(steps: np.ndarray, loss: np.ndarray, baseline: float, tol: float = 0.1) -> tuple[float, float]:
    """(plateau start, plateau end) of one loss curve; nan where a boundary is not reached."""
    steps, loss = np.asarray(steps, dtype=float), np.asarray(loss, dtype=float)
    reached = np.flatnonzero(loss <= (1 + tol) * baseline)
    if len(reached) == 0:
        return np.nan, np.nan
    start = reached[0]
    below = np.flatnonzero(loss[start:] <= (1 - tol) * baseline)
    return steps[start], (steps[start + below[0]] if len(below) else np.nan)


def detect_phases(steps: np.ndarray, per_sequence_loss: np.ndarray, baseline: float, tol: float = 0.1,
                  n_boot: int = 200, seed: int = 0) -> Phases:
    """Phase boundaries from per-sequence attribute losses [n_evals, n_sequences], with 95% CIs."""
    per_sequence_loss = np.asarray(per_sequence_loss, dtype=float)
    start, end = boundaries(steps, per_sequence_loss.mean(1), baseline, tol)
    rng = np.random.default_rng(seed)
    n = per_sequence_loss.shape[1]
    boots = np.array([boundaries(steps, per_sequence_loss[:, rng.integers(n, size=n)].mean(1), baseline, tol)
                      for _ in range(n_boot)])

    def ci(col: np.ndarray) -> tuple[float, float]:
        col = col[~np.isnan(col)]
        return (float(np.percentile(col, 2.5)), float(np.percentile(col, 97.5))) if len(col) else (np.nan, np.nan)

    return Phases(float(start), float(end), ci(boots[:, 0]), ci(boots[:, 1]), tol)
