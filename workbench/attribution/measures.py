"""Measures of a head: one differentiable number per sequence that says how much the head does recall.

A measure is what the influence function measures (the "measurement" of the influence literature): its gradient with
respect to the tracked modules of the `HeadView` is what training sequences are scored against.

* ``attention`` (tracks ``qk``): at every value-query position (the one predicting an attribute value's
  first token), the head's summed attention mass on the name tokens; mean over the sequence's queries.
  The recall head's signature (docs/method.md §4.4), a function of W_Q, W_K only.
* ``logit`` (tracks ``qk``, ``v``, ``o``): at the same positions, the head's direct logit attribution to
  the correct next token: its output centred (as ln_final does), divided by ln_final's frozen scale,
  times ln_final.w, read by the unembedding column of the target; mean over the sequence's queries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from workbench.data.batch import Batch

MEASURE_SEED_OFFSET = (
    1  # the measure set: eval_batch("seen", size, seed_offset=1), seen individuals on evaluation templates
)


@dataclass(frozen=True)
class Measure:
    """name, the HeadView modules whose parameters it depends on, and fn(view, batch) -> [batch]."""

    name: str
    modules: tuple[str, ...]
    fn: Callable

    def __call__(self, view, batch: Batch) -> Float[Tensor, " batch"]:
        return self.fn(view, batch)


def _query_mean(values: Float[Tensor, "batch pos"], batch: Batch) -> Float[Tensor, " batch"]:
    queries = batch.value_query_mask.to(values.device).float()
    return (values * queries).sum(1) / queries.sum(1).clamp(min=1)


def _attention(view, batch: Batch) -> Float[Tensor, " batch"]:
    device = next(view.parameters()).device
    view(batch.tokens.to(device))
    pattern = view.captured["pattern"]  # [batch query key]
    to_name = torch.einsum("bqk,bk->bq", pattern, batch.name_mask.to(device).to(pattern.dtype))
    return _query_mean(to_name, batch)


def _logit(view, batch: Batch) -> Float[Tensor, " batch"]:
    device = next(view.parameters()).device
    view(batch.tokens.to(device))
    out, scale = view.captured["head_out"], view.captured["final_scale"]  # [batch pos d_model], [batch pos 1]
    model = view.model
    normed = (out - out.mean(-1, keepdim=True)) / scale * model.ln_final.w  # [batch pos d_model]
    targets = torch.zeros_like(batch.tokens)
    targets[:, :-1] = batch.tokens[:, 1:]
    w_target = model.unembed.W_U[:, targets.to(device)]  # [d_model batch pos]
    dla = torch.einsum("bpd,dbp->bp", normed, w_target)
    return _query_mean(dla, batch)


def attention_measure() -> Measure:
    return Measure("attention", ("qk",), _attention)


def logit_measure() -> Measure:
    return Measure("logit", ("qk", "v", "o"), _logit)


# name -> a Measure factory. Register your own (MEASURES["mine"] = lambda: Measure("mine", ("qk",), fn)) to use it
# by name in AttributionConfig, `workbench.attribute(..., measure="mine")` and `measure_over_training`.
MEASURES: dict[str, Callable[[], Measure]] = {"attention": attention_measure, "logit": logit_measure}
