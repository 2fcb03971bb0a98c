"""Samplers over individuals: which individual each training biography is about, per step.

Every sampler is a pure function of (seed, step): `sampler.individuals(step)` draws from a generator
seeded with [seed, stream, step], so a resumed run sees exactly the batches an uninterrupted one
would. Individuals are global ids in the run's `Population`.
"""

from __future__ import annotations

import math

import numpy as np

from workbench.config import SamplerConfig

_STREAM_SAMPLER = 11


class Sampler:
    """Draws `batch_size` individual ids for a step from a fixed categorical distribution.

    Subclasses override `_pool(step)` to return (ids, cdf or None for uniform) for that step.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seed: int):
        self.ids = np.asarray(ids, dtype=np.int64)
        self.batch_size, self.seed = batch_size, seed

    def probabilities(self, step: int) -> np.ndarray:
        """P(individual) over `self.ids` at a step (used by tests and plots)."""
        ids, cdf = self._pool(step)
        p = np.zeros(len(self.ids))
        sel = np.searchsorted(self.ids, ids)
        p[sel] = 1.0 / len(ids) if cdf is None else np.diff(cdf, prepend=0.0)
        return p

    def individuals(self, step: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, _STREAM_SAMPLER, step])
        ids, cdf = self._pool(step)
        if cdf is None:
            return ids[rng.integers(len(ids), size=self.batch_size)]
        idx = np.searchsorted(cdf, rng.random(self.batch_size) * cdf[-1], side="right")
        return ids[np.minimum(idx, len(ids) - 1)]

    def _pool(self, step: int) -> tuple[np.ndarray, np.ndarray | None]:
        return self.ids, None


class WeightedSampler(Sampler):
    """A fixed weight per individual (power law, celebrities, fine-tuning replay mixture)."""

    def __init__(self, ids: np.ndarray, weights: np.ndarray, batch_size: int, seed: int):
        super().__init__(ids, batch_size, seed)
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != self.ids.shape or (w < 0).any() or w.sum() <= 0:
            raise ValueError("weights must be non-negative, one per individual, not all zero")
        self.cdf = np.cumsum(w / w.sum())

    def _pool(self, step: int) -> tuple[np.ndarray, np.ndarray | None]:
        return self.ids, self.cdf


class WarmupSampler(Sampler):
    """The warm-up individuals (ids, in order) for `warmup_steps` steps, then all uniformly."""

    def __init__(self, ids: np.ndarray, warmup: np.ndarray, warmup_steps: int, batch_size: int, seed: int):
        super().__init__(ids, batch_size, seed)
        self.warmup, self.warmup_steps = np.sort(np.asarray(warmup, dtype=np.int64)), warmup_steps

    def _pool(self, step: int) -> tuple[np.ndarray, np.ndarray | None]:
        return (self.warmup, None) if step < self.warmup_steps else (self.ids, None)


class SequentialSampler(Sampler):
    """`n_groups` equal groups visited in order; the whole cycle repeats `n_repeats` times."""

    def __init__(self, ids: np.ndarray, n_groups: int, n_repeats: int, total_steps: int, batch_size: int, seed: int):
        super().__init__(ids, batch_size, seed)
        self.bounds = np.linspace(0, len(self.ids), n_groups + 1).round().astype(int)
        self.n_groups, self.n_phases, self.total_steps = n_groups, n_groups * n_repeats, total_steps

    def group_at(self, step: int) -> int:
        phase = min(step * self.n_phases // self.total_steps, self.n_phases - 1)
        return phase % self.n_groups

    def _pool(self, step: int) -> tuple[np.ndarray, np.ndarray | None]:
        g = self.group_at(step)
        return self.ids[self.bounds[g] : self.bounds[g + 1]], None


def warmup_steps(cfg: SamplerConfig, batch_size: int) -> int:
    """Length of the warm-up in steps: `warmup_steps` when given, else epochs_warmup epochs over the
    warm-up individuals (len(warmup_ids), else indiv_warmup, / batch_size steps each)."""
    if cfg.warmup_steps:
        return cfg.warmup_steps
    return math.ceil(cfg.epochs_warmup * (len(cfg.warmup_ids) or cfg.indiv_warmup) / batch_size)


def make_sampler(cfg: SamplerConfig, ids: range | np.ndarray, batch_size: int, total_steps: int, seed: int) -> Sampler:
    """The pre-training sampler a `SamplerConfig` describes, over the individuals `ids` (in order)."""
    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids)
    if cfg.kind == "uniform":
        return Sampler(ids, batch_size, seed)
    if cfg.kind == "power_law":
        return WeightedSampler(ids, np.arange(1, n + 1, dtype=np.float64) ** -cfg.alpha, batch_size, seed)
    if cfg.kind == "celebrities":
        w = np.ones(n)
        w[: cfg.n_celebrities] = cfg.weight_celebrities
        return WeightedSampler(ids, w, batch_size, seed)
    if cfg.kind == "warmup":
        warmup = ids[list(cfg.warmup_ids)] if cfg.warmup_ids else ids[: cfg.indiv_warmup]
        return WarmupSampler(ids, warmup, warmup_steps(cfg, batch_size), batch_size, seed)
    if cfg.kind == "sequential":
        return SequentialSampler(ids, cfg.n_groups, cfg.n_repeats, total_steps, batch_size, seed)
    raise ValueError(f"sampler.kind={cfg.kind!r} is out of range")


def finetune_sampler(new_ids: range, pretrain_ids: range, replay_weight: float, batch_size: int, seed: int) -> Sampler:
    """New individuals at weight 1 each, plus replay of pre-training individuals at `replay_weight` each."""
    if replay_weight < 0:
        raise ValueError(f"replay_weight={replay_weight!r} is out of range: allowed [0, inf)")
    if replay_weight == 0:
        return Sampler(np.asarray(new_ids), batch_size, seed)
    ids = np.concatenate([np.asarray(pretrain_ids), np.asarray(new_ids)])
    w = np.concatenate([np.full(len(pretrain_ids), replay_weight), np.ones(len(new_ids))])
    order = np.argsort(ids)
    return WeightedSampler(ids[order], w[order], batch_size, seed)
