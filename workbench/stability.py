"""Attention stability (digest §4.7): how far attention patterns move, per layer and head.

The distance between two models' attention on the same biographies is the Jensen-Shannon
divergence (base 2, so in [0, 1]) between their distributions over keys
(`blocks.{l}.attn.hook_pattern`), per query position, averaged over the chosen query positions:
every real token ("all") or the positions that predict the first token of an attribute value
("attribute", where the last layer fetches the value). Padding queries are never counted; with
right padding and causal attention, keys of real queries are always real tokens.

The study's claim: during fine-tuning, attention barely moves (the damage is in the MLP
key-value memory). `attention_stability` measures a run's checkpoints against its first one
(for a fine-tuning run: the base checkpoint); `pretraining_drift` gives the scale, the same
distance over pre-training (each checkpoint vs step 0 and vs the previous checkpoint). Results
are cached as CSV under `<run>/analysis/` and extended when the run has new checkpoints.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from workbench.data.batch import Batch
from workbench.run import Run, load_run
from workbench.atomic import atomic_write_bytes

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
def pattern_distance(model_a: HookedTransformer, model_b: HookedTransformer, batch: Batch,
                     positions: str = "all", chunk: int = 32) -> pd.DataFrame:
    """Mean Jensen-Shannon divergence between the two models' attention patterns, per layer and head.

    Returns columns (layer, head, distance); distance is averaged over the selected query
    positions of every sequence of `batch` (see `query_mask`).
    """
    mask = query_mask(batch, positions)
    shape_a, shape_b = (model_a.cfg.n_layers, model_a.cfg.n_heads), (model_b.cfg.n_layers, model_b.cfg.n_heads)
    if shape_a != shape_b:
        raise ValueError(f"model_b has {shape_b[0]} layers x {shape_b[1]} heads; model_a has "
                         f"{shape_a[0]} x {shape_a[1]}: allowed the same architecture")
    n_queries = int(mask.sum())
    if n_queries == 0:
        raise ValueError(f"batch has no query positions for positions={positions!r}")
    total = torch.zeros(*shape_a, dtype=torch.float64)
    was = (model_a.training, model_b.training)
    model_a.eval(), model_b.eval()
    try:
        for i in range(0, len(batch), chunk):
            tokens, m = batch.tokens[i: i + chunk], mask[i: i + chunk]
            for layer, (pa, pb) in enumerate(zip(_patterns(model_a, tokens), _patterns(model_b, tokens))):
                js = js_divergence(pa, pb)  # [batch, head, query]
                total[layer] += (js * m[:, None, :]).sum((0, 2))
    finally:
        model_a.train(was[0]), model_b.train(was[1])
    layer, head = np.meshgrid(np.arange(shape_a[0]), np.arange(shape_a[1]), indexing="ij")
    return pd.DataFrame({"layer": layer.ravel(), "head": head.ravel(),
                         "distance": (total / n_queries).numpy().ravel()})


# -- over checkpoints, cached ------------------------------------------------------------------


def _cache_path(run: Run, name: str) -> Path:
    return run.path / "analysis" / f"{name}.csv"


def _read_cache(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path, engine="python") if path.is_file() else None


def _write_cache(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    atomic_write_bytes(path, buf.getvalue().encode())


def _as_run(run: Run | str | Path) -> Run:
    return run if isinstance(run, Run) else load_run(run)


def _over_checkpoints(run: Run, pairs: list[tuple[int, int]], cache_name: str, size: int, positions: str,
                      progress: bool) -> pd.DataFrame:
    """Distance for each (step, reference step) pair, reusing cached pairs; rows sorted by step."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size={size!r} is out of range: allowed an integer >= 1")
    _check_positions(positions)
    path = _cache_path(run, cache_name)
    cached = _read_cache(path)
    done = set() if cached is None else set(zip(cached["step"], cached["reference_step"]))
    todo = [p for p in pairs if p not in done]
    frames = [] if cached is None else [cached]
    if todo:
        batch = run.data.eval_batch("seen", size)  # seen (pre-training) individuals, evaluation templates
        models: dict[int, HookedTransformer] = {}

        def model(step: int) -> HookedTransformer:
            if step not in models:
                models[step] = run.load_model(step)
            return models[step]

        for step, ref in tqdm(todo, desc=f"{run.name}: {cache_name}", disable=not progress):
            df = pattern_distance(model(step), model(ref), batch, positions)
            frames.append(df.assign(step=step, reference_step=ref))
            for s in [s for s in models if s not in (step, ref)]:
                del models[s]  # keep at most two models in memory
        out = pd.concat(frames, ignore_index=True)
        _write_cache(path, out)
    else:
        out = cached
    wanted = pd.DataFrame(pairs, columns=["step", "reference_step"])
    out = wanted.merge(out, on=["step", "reference_step"], how="left")
    return out.sort_values(["step", "reference_step", "layer", "head"], ignore_index=True)


def attention_stability(run: Run | str | Path, reference_step: int | None = None, size: int = 128,
                        positions: str = "all", progress: bool = True) -> pd.DataFrame:
    """Distance of every checkpoint of `run` from `reference_step` (default: its first checkpoint,
    for a fine-tuning run the base checkpoint). Columns: step, layer, head, distance, reference_step."""
    run = _as_run(run)
    steps = run.checkpoint_steps
    ref = steps[0] if reference_step is None else reference_step
    if ref not in steps:
        raise ValueError(f"reference_step={ref} has no checkpoint in run {run.path}: allowed {steps}")
    pairs = [(s, ref) for s in steps]
    df = _over_checkpoints(run, pairs, f"attention_stability-ref{ref}-n{size}-{positions}", size, positions, progress)
    return df[_COLUMNS + ["reference_step"]]


def pretraining_drift(base_run: Run | str | Path, size: int = 128, positions: str = "all",
                      progress: bool = True) -> pd.DataFrame:
    """The same distance over a pre-training run, for scale: every checkpoint vs step 0
    (reference="start") and vs the previous checkpoint (reference="previous")."""
    run = _as_run(base_run)
    steps = run.checkpoint_steps
    start = [(s, steps[0]) for s in steps[1:]]
    previous = list(zip(steps[1:], steps[:-1]))
    pairs = list(dict.fromkeys(start + previous))
    df = _over_checkpoints(run, pairs, f"pretraining_drift-n{size}-{positions}", size, positions, progress)
    frames = [df.merge(pd.DataFrame(p, columns=["step", "reference_step"])).assign(reference=name)
              for name, p in (("start", start), ("previous", previous))]
    return pd.concat(frames, ignore_index=True)[_COLUMNS + ["reference_step", "reference"]]
