"""Packed training sequences: k biographies per sequence, some about the same individual twice.

A model trained only on single biographies has no reason to read facts from its context; web text
mentions a person in several documents. A packed sequence is k whole biographies, each starting with
BOS (as documents are separated in packed pre-training), so every biography keeps the labels it has
alone (kind, attribute, value start) and the study's metrics apply to each of them. Which individuals
share a sequence is a pure function of (seed, step), like everything else in a batch.
"""

from __future__ import annotations

import numpy as np

_STREAM_PACKING = 23
_STREAM_CONTEXT = 29


def pack_individuals(drawn: np.ndarray, k: int, q_same: float, seed: int, step: int) -> np.ndarray:
    """[batch, k] individuals per packed sequence from the sampler's batch*k draws (in order): with
    probability q_same one of slots 1..k-1 (uniform) repeats slot 0's individual."""
    rows = np.asarray(drawn, dtype=np.int64).reshape(-1, k).copy()
    if k > 1 and q_same > 0:
        rng = np.random.default_rng([seed, _STREAM_PACKING, step])
        same = rng.random(len(rows)) < q_same
        slot = rng.integers(1, k, size=len(rows))
        rows[same, slot[same]] = rows[same, 0]
    return rows


def insert_context(rows: np.ndarray, q_ctx: float, context: range, seed: int, step: int) -> np.ndarray:
    """`rows` [batch, k] where, with probability q_ctx per sequence, two distinct random slots hold one
    context-only individual drawn uniformly from `context` (after q_same: it may overwrite a repeat). Without
    context-only individuals, `rows` itself."""
    if q_ctx > 0 and rows.shape[1] > 1:
        rows = rows.copy()
        rng = np.random.default_rng([seed, _STREAM_CONTEXT, step])
        hit = np.flatnonzero(rng.random(len(rows)) < q_ctx)
        slots = np.argsort(rng.random((len(hit), rows.shape[1])), axis=1)[:, :2]
        who = context.start + rng.integers(len(context), size=len(hit))
        rows[hit, slots[:, 0]] = who
        rows[hit, slots[:, 1]] = who
    return rows


def pack_arrays(arrays: dict, k: int, pad_id: int) -> dict:
    """Concatenate every k consecutive biographies of `Biographer.arrays` output into one sequence
    (right-padded to the longest). `individuals` becomes [batch, k]; `lengths` the packed lengths."""
    n, lengths = len(arrays["lengths"]), arrays["lengths"]
    b = n // k
    packed_len = lengths.reshape(b, k).sum(1)
    t = int(packed_len.max())
    fill = {"tokens": pad_id, "kind": 0, "attribute": -1, "value_start": False}
    out = {name: np.full((b, t), value, dtype=arrays[name].dtype) for name, value in fill.items()}
    for r in range(b):
        at = 0
        for i in range(r * k, r * k + k):
            n_i = int(lengths[i])
            for name in fill:
                out[name][r, at : at + n_i] = arrays[name][i, :n_i]
            at += n_i
    out["individuals"] = arrays["individuals"].reshape(b, k)
    out["lengths"] = packed_len
    out["templates"] = arrays["templates"].reshape(b, k, -1)
    return out
