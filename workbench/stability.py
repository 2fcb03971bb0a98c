"""Attention stability (docs/method.md §4.7): how far attention patterns move, per layer and head.

The distance between two models' attention on the same biographies is the Jensen-Shannon
divergence (base 2, so in [0, 1]) between their distributions over keys
(`blocks.{l}.attn.hook_pattern`), per query position, averaged over the chosen query positions:
every real token ("all") or the positions that predict the first token of an attribute value
("attribute", where the last layer fetches the value). Padding queries are never counted; with
right padding and causal attention, keys of real queries are always real tokens.

The study's claim (docs/method.md §4.7): during fine-tuning, attention barely moves (the damage is in the MLP
key-value memory). `attention_stability` measures a run's checkpoints against its first one
(for a fine-tuning run: the base checkpoint); `pretraining_drift` gives the scale, the same
distance over pre-training (each checkpoint vs step 0 and vs the previous checkpoint). Results
are cached under `<run>/analysis/` (`workbench.over_checkpoints`) and extended when the run has new
checkpoints.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float
from torch import Tensor
from transformer_lens import HookedTransformer

from workbench.data.batch import Batch
from workbench.over_checkpoints import over_checkpoints
from workbench.run import Run, load_run

POSITIONS = ("attribute", "all")
_COLUMNS = ["step", "layer", "head", "distance"]


def query_mask(batch: Batch, positions: str) -> Bool[Tensor, "batch pos"]:
    """The query positions to compare: real tokens, or those predicting an attribute value's first token."""
    _check_positions(positions)
    return batch.mask if positions == "all" else batch.value_query_mask


def _check_positions(positions: str) -> None:
    if positions not in POSITIONS:
        raise ValueError(f"positions={positions!r} is out of range: allowed one of {POSITIONS}")


def js_divergence(p: Float[Tensor, "... key"], q: Float[Tensor, "... key"]) -> Float[Tensor, "..."]:
    """Jensen-Shannon divergence in bits (in [0, 1]); exactly 0 for p == q and symmetric in p, q."""
    p, q = p.double(), q.double()
    m = (p + q) / 2
    kl = lambda a: torch.where(a > 0, a * torch.log2(a / m), torch.zeros_like(a)).sum(-1)  # noqa: E731
    return (0.5 * kl(p) + 0.5 * kl(q)).clamp(0.0, 1.0)


def _patterns(model: HookedTransformer, tokens: Tensor) -> list[Float[Tensor, "batch head query key"]]:
    device = next(model.parameters()).device
    _, cache = model.run_with_cache(tokens.to(device), names_filter=lambda n: n.endswith("attn.hook_pattern"))
    return [cache[f"blocks.{layer}.attn.hook_pattern"].cpu() for layer in range(model.cfg.n_layers)]


@torch.no_grad()
def pattern_distance(
    model_a: HookedTransformer, model_b: HookedTransformer, batch: Batch, positions: str = "all", chunk: int = 32
) -> pd.DataFrame:
    """Mean Jensen-Shannon divergence between the two models' attention patterns, per layer and head.

    Returns columns (layer, head, distance); distance is averaged over the selected query
    positions of every sequence of `batch` (see `query_mask`).
    """
    mask = query_mask(batch, positions)
    shape_a, shape_b = (model_a.cfg.n_layers, model_a.cfg.n_heads), (model_b.cfg.n_layers, model_b.cfg.n_heads)
    if shape_a != shape_b:
        raise ValueError(
            f"model_b has {shape_b[0]} layers x {shape_b[1]} heads; model_a has "
            f"{shape_a[0]} x {shape_a[1]}: allowed the same architecture"
        )
    n_queries = int(mask.sum())
    if n_queries == 0:
        raise ValueError(f"batch has no query positions for positions={positions!r}")
    total = torch.zeros(*shape_a, dtype=torch.float64)
    was = (model_a.training, model_b.training)
    model_a.eval(), model_b.eval()
    try:
        for i in range(0, len(batch), chunk):
            tokens, m = batch.tokens[i : i + chunk], mask[i : i + chunk]
            for layer, (pa, pb) in enumerate(zip(_patterns(model_a, tokens), _patterns(model_b, tokens))):
                js = js_divergence(pa, pb)  # [batch, head, query]
                total[layer] += (js * m[:, None, :]).sum((0, 2))
    finally:
        model_a.train(was[0]), model_b.train(was[1])
    layer, head = np.meshgrid(np.arange(shape_a[0]), np.arange(shape_a[1]), indexing="ij")
    return pd.DataFrame({"layer": layer.ravel(), "head": head.ravel(), "distance": (total / n_queries).numpy().ravel()})


# -- over checkpoints, cached ------------------------------------------------------------------


def _as_run(run: Run | str | Path) -> Run:
    return run if isinstance(run, Run) else load_run(run)


def _check_size_and_positions(size: int, positions: str) -> None:
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size={size!r} is out of range: allowed an integer >= 1")
    _check_positions(positions)


def _distances(reference: Callable[[int], int], batch: Callable[[], Batch], positions: str):
    """`compute(step, models)` for `over_checkpoints`: the distance of each step from reference(step)."""

    def compute(step: int, models) -> pd.DataFrame:
        ref = reference(step)
        return pattern_distance(models(step), models(ref), batch(), positions).assign(reference_step=ref)

    return compute


def _eval_batch(run: Run, size: int) -> Callable[[], Batch]:
    # seen (pre-training) individuals, evaluation templates; built only if a step is computed
    return functools.cache(lambda: run.data.eval_batch("seen", size))


def attention_stability(
    run: Run | str | Path,
    reference_step: int | None = None,
    size: int = 128,
    positions: str = "all",
    progress: bool = True,
) -> pd.DataFrame:
    """Distance of every checkpoint of `run` from `reference_step` (default: its first checkpoint,
    for a fine-tuning run the base checkpoint). Columns: step, layer, head, distance, reference_step.
    Cached in <run>/analysis/attention_stability.csv (`over_checkpoints`)."""
    run = _as_run(run)
    _check_size_and_positions(size, positions)
    steps = run.checkpoint_steps
    ref = steps[0] if reference_step is None else reference_step
    if ref not in steps:
        raise ValueError(f"reference_step={ref} has no checkpoint in run {run.path}: allowed {steps}")
    params = {
        "size": size,
        "positions": positions,
        "reference_step": ref,
        "reference_sha256": run.manifest_entry(ref)["sha256"],
    }
    compute = _distances(lambda step: ref, _eval_batch(run, size), positions)
    df = over_checkpoints(run, "attention_stability", compute, steps, params, progress)
    return df[_COLUMNS + ["reference_step"]]


def pretraining_drift(
    base_run: Run | str | Path, size: int = 128, positions: str = "all", progress: bool = True
) -> pd.DataFrame:
    """The same distance over a pre-training run, for scale: every checkpoint vs step 0
    (reference="start") and vs the previous checkpoint (reference="previous").
    Cached in <run>/analysis/pretraining_drift.csv (`over_checkpoints`, params naming the rule)."""
    run = _as_run(base_run)
    _check_size_and_positions(size, positions)
    steps = run.checkpoint_steps
    previous = dict(zip(steps[1:], steps[:-1]))
    start = {"reference_step": steps[0], "reference_sha256": run.manifest_entry(steps[0])["sha256"]}
    batch = _eval_batch(run, size)
    frames = []
    for name, reference, extra in (("start", lambda step: steps[0], start), ("previous", previous.__getitem__, {})):
        params = {"size": size, "positions": positions, "reference": name, **extra}
        df = over_checkpoints(
            run, "pretraining_drift", _distances(reference, batch, positions), steps[1:], params, progress
        )
        frames.append(df.assign(reference=name))
    return pd.concat(frames, ignore_index=True)[_COLUMNS + ["reference_step", "reference"]]
