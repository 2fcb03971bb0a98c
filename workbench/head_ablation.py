"""Attention-head ablation on the attribute loss of an evaluation batch (issue 25 item 4: layer-0 heads).

Each head of a layer in turn (head = -1: all of the layer's heads at once) has its output ``hook_z``
replaced, and the attribute loss of the batch (`workbench.metrics.evaluate`, the run's own metric) is
compared with the unablated model's:

* ``mean`` (the default, the field's usual choice): the head's output averaged over the evaluation
  batch at each position, padding excluded. It removes what the head's output says about *these*
  tokens while keeping its average contribution, so the residual stream stays on-distribution; a
  layer-0 head's output is largely positional, hence the per-position mean.
* ``zero``: the output set to 0; it also removes the average contribution, so it overstates a head's
  importance (kept for comparison).

`head_ablation_over_training` runs it at checkpoints of a run, cached like the attention metrics.
"""

from __future__ import annotations

import functools

import pandas as pd
import torch
from transformer_lens.utilities import get_act_name

from workbench.data.batch import Batch
from workbench.metrics import evaluate
from workbench.over_checkpoints import over_checkpoints
from workbench.patching.ablations import position_means

KINDS = ("mean", "zero")
COLUMNS = ["layer", "head", "kind", "attribute_loss", "attribute_accuracy", "clean_loss", "delta"]


@torch.no_grad()
def head_ablation(model, batch: Batch, n_attributes: int, layer: int = 0, kind: str = "mean", chunk: int = 64):
    """Attribute loss with each head of `layer` (then all of them, head -1) ablated, one at a time.

    Returns layer, head, kind, attribute_loss, attribute_accuracy, clean_loss (unablated) and delta
    (= attribute_loss - clean_loss: positive when the head helps)."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is unknown: allowed {' | '.join(KINDS)}")
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n_layers:
        raise ValueError(f"layer={layer!r} is out of range: allowed an int in [0, {n_layers})")
    if chunk < 1:
        raise ValueError(f"chunk={chunk!r} is out of range: allowed >= 1")
    if len(batch) == 0:
        raise ValueError("batch is empty")
    fill = position_means(model, batch, "z", batch.tokens.shape[1])[layer] if kind == "mean" else None

    def hook(z, hook, heads):  # z: [batch, pos, head, d_head]; chunks keep the batch's padded width
        z[:, :, heads] = 0.0 if fill is None else fill[:, :, heads].to(z.dtype)
        return z

    clean = evaluate(model, batch, n_attributes, chunk).loss.mean().item()
    rows = []
    for head in (*range(n_heads), -1):
        heads = list(range(n_heads)) if head < 0 else [head]
        hooks = [(get_act_name("z", layer), functools.partial(hook, heads=heads))]
        scores = evaluate(model, batch, n_attributes, chunk, hooks=hooks)
        loss = scores.loss.mean().item()
        rows.append((layer, head, kind, loss, scores.correct.mean().item(), clean, loss - clean))
    return pd.DataFrame(rows, columns=COLUMNS)


SPLITS = ("seen", "heldout")


def head_ablation_over_training(
    run,
    steps: list[int] | None = None,
    layer: int = 0,
    kinds=KINDS,
    splits=("seen",),
    size: int = 256,
    progress: bool = True,
) -> pd.DataFrame:
    """`head_ablation` of every kind at checkpoints of a run (step, split + COLUMNS), on the run's fixed
    evaluation sets `run.data.eval_batch(split, size)`; cached in <run>/analysis/head_ablation.csv.

    On held-out individuals the model cannot know the values: a head whose ablation hurts seen and
    held-out loss alike carries the value's format or marginal, not the individual's facts."""
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    if not kinds or any(k not in KINDS for k in kinds):
        raise ValueError(f"kinds={kinds!r} is not allowed: allowed a non-empty subset of {list(KINDS)}")
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    if not splits or any(s not in SPLITS for s in splits):
        raise ValueError(f"splits={splits!r} is not allowed: allowed a non-empty subset of {list(SPLITS)}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size={size!r} is out of range: allowed an int >= 1")
    n_layers = run.config.model.n_layers
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n_layers:
        raise ValueError(f"layer={layer!r} is out of range: allowed an int in [0, {n_layers})")
    batches = {s: functools.cache(functools.partial(run.data.eval_batch, s, size)) for s in splits}
    n_attributes = len(run.config.data.attributes)

    def compute(step, models):
        parts = [
            head_ablation(models(step), batches[s](), n_attributes, layer, k).assign(split=s)
            for s in splits
            for k in kinds
        ]
        return pd.concat(parts)[["split", *COLUMNS]]

    params = {"size": size, "layer": layer, "kinds": list(kinds), "splits": list(splits)}
    return over_checkpoints(run, "head_ablation", compute, steps, params, progress)[["step", "split", *COLUMNS]]
