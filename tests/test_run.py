"""The read-only run view: the fresh evaluation a budget decides on (`Run.seen_accuracy`)."""

from __future__ import annotations

import numpy as np
import torch


def test_seen_accuracy_scores_fresh_biographies_of_seen_individuals(tiny_run):
    acc = tiny_run.seen_accuracy(size=48)
    n_attributes = len(tiny_run.config.data.attributes)
    assert acc.shape == (48,) and np.allclose(acc * n_attributes, np.round(acc * n_attributes))
    assert np.array_equal(acc, tiny_run.seen_accuracy(size=48))  # a fixed set: the same scores again
    fresh, reported = (tiny_run.data.eval_batch("seen", 48, seed_offset=k).tokens for k in (1, 0))
    assert not torch.equal(fresh, reported)  # not the set training reported on
