"""Which MLP layers hold an individual's attributes: ablation and activation patching at the name.

Both interventions act on one layer's MLP output (`blocks.{l}.hook_mlp_out`) at the individual's
NAME token positions (every sentence), and are scored on the attribute values, teacher forced, with
`metrics.value_scores` (loss = summed NLL of a value's tokens = minus its log-probability):

* mean_ablation / zero_ablation: replace the MLP output by its mean over the name positions of a
  reference batch (other individuals of the same group) or by zero. score = the drop in the value's
  log-probability (nats, mean over biographies); > 0 means the layer's output at the name helps.
* patching: a corrupted biography carries another individual's name (same number of name tokens,
  same templates and sentence order, the clean individual's values); restoring the clean MLP output
  of one layer at the name positions recovers score = (L_corrupt - L_patched) / (L_corrupt - L_clean)
  of the gap (means over biographies, then the ratio); 1 = that layer alone restores the facts.
  NaN when the corruption changes nothing (|L_corrupt - L_clean| < 1e-6 nats).

Results are long DataFrames: layer, method, attribute (each attribute and "all" = mean over
attributes), score, nats (the raw change in value log-probability behind the score).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from workbench.data.batch import Batch
from workbench.data.biography_data import BiographyData
from workbench.metrics import evaluate
from workbench.over_checkpoints import bound_params, over_checkpoints
from workbench.probes.sites import biographies, check_layers, sample_individuals

METHODS = ("mean_ablation", "zero_ablation", "patching")
COLUMNS = ["layer", "method", "attribute", "score", "nats"]
SITE = "hook_mlp_out"


def _replace_hook(mask: Bool[Tensor, "batch pos"], replacement: Tensor | float):
    def hook(act: Float[Tensor, "batch pos d_model"], hook) -> Tensor:
        rep = replacement.to(act.device, act.dtype) if torch.is_tensor(replacement) else replacement
        m = mask.to(act.device)[..., None]
        if torch.is_tensor(rep) and rep.ndim == 3:
            return torch.where(m, rep, act)
        return torch.where(m, torch.as_tensor(rep, dtype=act.dtype, device=act.device), act)

    return hook


@torch.no_grad()
def intervened_loss(
    model: HookedTransformer,
    batch: Batch,
    layer: int,
    mask: Bool[Tensor, "batch pos"],
    replacement: Tensor | float | None,
    n_attributes: int,
    site: str = SITE,
    chunk: int = 64,
) -> Float[Tensor, "batch attribute"]:
    """Summed value NLL per (biography, attribute) with `blocks.{layer}.{site}` set to `replacement`
    where `mask` is True. replacement: a float / [d_model] vector (broadcast), a [batch, pos, d_model]
    tensor (e.g. clean activations: patching), or None (no intervention)."""
    if mask.shape != batch.tokens.shape:
        raise ValueError(f"mask has shape {tuple(mask.shape)}; the batch's tokens have {tuple(batch.tokens.shape)}")
    losses = []
    for i in range(0, len(batch), chunk):
        sub = batch[i : i + chunk]
        hooks = None
        if replacement is not None:
            rep = replacement[i : i + chunk] if torch.is_tensor(replacement) and replacement.ndim == 3 else replacement
            hooks = [(f"blocks.{layer}.{site}", _replace_hook(mask[i : i + chunk], rep))]
        losses.append(evaluate(model, sub, n_attributes, chunk=len(sub), hooks=hooks).loss)
    return torch.cat(losses)


@torch.no_grad()
def _cache_site(model: HookedTransformer, batch: Batch, layers: list[int], chunk: int) -> dict[int, Tensor]:
    device = next(model.parameters()).device
    names = {f"blocks.{l}.{SITE}": l for l in layers}
    parts: dict[int, list[Tensor]] = {l: [] for l in layers}
    for i in range(0, len(batch), chunk):
        _, cache = model.run_with_cache(batch.tokens[i : i + chunk].to(device), names_filter=lambda n: n in names)
        for name, l in names.items():
            parts[l].append(cache[name].cpu())
    return {l: torch.cat(p) for l, p in parts.items()}


def _rows(layer: int, method: str, attributes: tuple[str, ...], score, nats) -> list[dict]:
    score, nats = np.asarray(score, dtype=float), np.asarray(nats, dtype=float)
    rows = [
        {"layer": layer, "method": method, "attribute": a, "score": score[j], "nats": nats[j]}
        for j, a in enumerate(attributes)
    ]
    rows.append({"layer": layer, "method": method, "attribute": "all", "score": score[-1], "nats": nats[-1]})
    return rows


def _with_total(per_attribute: Float[Tensor, " attribute"]) -> np.ndarray:
    return np.append(per_attribute.numpy(), per_attribute.mean().item())


def localise(
    model: HookedTransformer,
    data: BiographyData,
    n: int = 64,
    group: str = "seen",
    methods: tuple[str, ...] = ("mean_ablation", "patching"),
    layers: list[int] | None = None,
    seed: int = 0,
    chunk: int = 64,
    progress: bool = False,
) -> pd.DataFrame:
    """Ablation and patching scores of every MLP layer at the name, on `n` individuals of `group`."""
    methods = tuple(methods)
    if not methods or any(m not in METHODS for m in methods):
        raise ValueError(f"methods={methods!r} is out of range: allowed a non-empty subset of {METHODS}")
    layers = check_layers(layers, model.cfg.n_layers)
    attributes = data.config.data.attributes
    n_attr = len(attributes)
    clean = biographies(data, sample_individuals(data, group, n, seed), seed)
    rows: list[dict] = []
    bar = tqdm(total=len(layers) * len(methods), disable=not progress, desc="localise")
    base = intervened_loss(model, clean, 0, clean.name_mask, None, n_attr, chunk=chunk).mean(0)
    if "mean_ablation" in methods:
        ref_ids = sample_individuals(data, group, min(n, len(data.population.group(group))), seed + 1)
        ref = biographies(data, ref_ids, seed + 1)
        ref_acts = _cache_site(model, ref, layers, chunk)
        ref_mask = ref.name_mask
    for method in methods:
        if method == "patching":
            rows += _patching_rows(model, data, clean, layers, group, seed, chunk, bar)
            continue
        for l in layers:
            rep = ref_acts[l][ref_mask].mean(0) if method == "mean_ablation" else 0.0
            loss = intervened_loss(model, clean, l, clean.name_mask, rep, n_attr, chunk=chunk).mean(0)
            drop = _with_total(loss - base)
            rows += _rows(l, method, attributes, drop, drop)
            bar.update(1)
    bar.close()
    return pd.DataFrame(rows, columns=COLUMNS)


def _patching_rows(model, data, batch, layers, group, seed, chunk, bar) -> list[dict]:
    attributes = data.config.data.attributes
    n_attr = len(attributes)
    clean, corrupted = data.biographer.corrupt_names(batch, data.population.group(group), seed)
    mask = clean.name_mask
    l_clean = intervened_loss(model, clean, 0, mask, None, n_attr, chunk=chunk).mean(0)
    l_corrupt = intervened_loss(model, corrupted, 0, mask, None, n_attr, chunk=chunk).mean(0)
    gap = _with_total(l_corrupt - l_clean)
    acts = _cache_site(model, clean, layers, chunk)
    rows = []
    for l in layers:
        l_patched = intervened_loss(model, corrupted, l, mask, acts[l], n_attr, chunk=chunk).mean(0)
        recovered = _with_total(l_corrupt - l_patched)
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(np.abs(gap) < 1e-6, np.nan, recovered / gap)
        rows += _rows(l, "patching", attributes, frac, recovered)
        bar.update(1)
    return rows


def localisation_over_checkpoints(run, steps: list[int] | None = None, progress: bool = True, **kwargs) -> pd.DataFrame:
    """`localise` at checkpoints of a `Run` (default: all), with a step column first.
    Cached in <run>/analysis/localisation.csv (`over_checkpoints`, params: localise's arguments)."""
    params = bound_params(localise, kwargs)

    def compute(step, models):
        return localise(models(step), run.data, **kwargs)

    return over_checkpoints(run, "localisation", compute, steps, params, progress)[["step", *COLUMNS]]
