"""Which head is the recall head: attention to the individual's name at attribute queries, and necessity.

docs/method.md (§4.4, §6.1) locates recall in a last-layer head that, at the position predicting an attribute
value, attends to the name tokens of that sentence. `head_scores` ranks heads by that attention
(``attribute->own_name``, `workbench.attention`) and by an ablation: the increase in attribute loss when
the head's output z is replaced by its mean over the batch's positions ("mean") or by zero ("zero").
`find_recall_head` picks the head with the highest attention among those whose ablation hurts
(ablation_effect > 0), else the highest attention.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from workbench.attribution.shim import check_head, check_head_index  # noqa: F401 (re-exported)
from workbench.config import check

ABLATIONS = ("mean", "zero")


def _z_hook(head: int, ablation: str):
    def hook(z, hook):  # [batch pos head d_head]
        z = z.clone()
        z[:, :, head] = 0.0 if ablation == "zero" else z[:, :, head].mean((0, 1))
        return z

    return hook


@torch.no_grad()
def head_scores(
    model, batch, n_attributes: int, ablation: str = "mean", layers: tuple[int, ...] | None = None
) -> pd.DataFrame:
    """layer, head, attribute_to_name, ablation_effect, rank (1 = recall-head candidate) on `batch`."""
    from workbench.attention import attention_metrics
    from workbench.metrics import evaluate

    check(ablation in ABLATIONS, "ablation", " | ".join(ABLATIONS), ablation)
    cfg = model.cfg
    layers = tuple(range(cfg.n_layers)) if layers is None else layers
    for layer in layers:
        check_head_index(cfg.n_layers, cfg.n_heads, layer, 0)
    attention = attention_metrics(model, batch)
    own = attention[attention["metric"] == "attribute->own_name"].set_index(["layer", "head"])["value"]
    base = evaluate(model, batch, n_attributes).loss.mean().item()
    rows = []
    for layer in layers:
        for head in range(cfg.n_heads):
            hooks = [(f"blocks.{layer}.attn.hook_z", _z_hook(head, ablation))]
            effect = evaluate(model, batch, n_attributes, hooks=hooks).loss.mean().item() - base
            rows.append((layer, head, float(own[(layer, head)]), effect))
    df = pd.DataFrame(rows, columns=["layer", "head", "attribute_to_name", "ablation_effect"])
    key = df["attribute_to_name"].where(df["ablation_effect"] > 0, df["attribute_to_name"] - 2.0)  # necessary first
    df["rank"] = key.rank(ascending=False, method="first").astype(int)
    return df.sort_values("rank").reset_index(drop=True)


@dataclass(frozen=True)
class RecallHead:
    """The chosen head, the checkpoint it was chosen at, and every candidate's scores."""

    layer: int
    head: int
    step: int
    scores: pd.DataFrame

    def __repr__(self) -> str:
        return f"RecallHead(L{self.layer}H{self.head} at step {self.step})"


def find_recall_head(
    run,
    step: int | None = None,
    size: int = 256,
    layers: tuple[int, ...] | None = None,
    ablation: str = "mean",
    progress: bool = False,
) -> RecallHead:
    """The recall head of `run` at checkpoint `step` (default: the first at or after the plateau end,
    else the last), among `layers` (default: the last layer), on `size` seen individuals."""
    from workbench.attribution.measures import MEASURE_SEED_OFFSET

    steps = run.checkpoint_steps
    if not steps:
        raise ValueError(f"run {run.path} has no checkpoint: allowed a trained run")
    if step is None:
        phases = run.phases()
        end = phases.plateau_end if phases.exists and not phases.censored else float("inf")
        step = next((s for s in steps if s >= end), steps[-1])
    check(step in steps, "step", f"a checkpoint step of the run: {steps}", step)
    n_layers = run.config.model.n_layers
    layers = (n_layers - 1,) if layers is None else tuple(layers)
    batch = run.data.eval_batch("seen", size, seed_offset=MEASURE_SEED_OFFSET)
    scores = head_scores(run.load_model(step), batch, len(run.config.data.attributes), ablation, layers)
    best = scores.iloc[0]
    return RecallHead(int(best["layer"]), int(best["head"]), int(step), scores)
