"""A mean over seeds with its 95% Student-t interval: the one interval of every "effect over seeds" table
(remove-and-retrain effects, fine-tuning drops)."""

from __future__ import annotations

import math

import numpy as np


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom (scipy's, exact); inf below 1."""
    from scipy.stats import t

    return float(t.ppf(0.975, df)) if df >= 1 else math.inf


def mean_interval(values) -> tuple[float, float, float, int]:
    """(mean, lo, hi, n) of the finite `values`: the 95% t-interval of their mean (infinite for one value, NaN
    for none)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if not n:
        return math.nan, math.nan, math.nan, 0
    mean = float(x.mean())
    half = t975(n - 1) * float(x.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
    return mean, mean - half, mean + half, n
