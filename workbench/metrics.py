"""Knowledge metrics on attribute values (docs/method.md §2): attribute loss and accuracy, confidence.

Attribute loss: cross-entropy summed over all tokens of an attribute value, averaged over the
values of a sequence and over the batch. Attribute accuracy: a value is right only if every one of
its tokens is the argmax prediction (teacher forced). Top-token probability and entropy are means
over attribute-value tokens (the hallucination measures on held-out individuals).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor

from workbench.data.batch import Batch
from workbench.data.kinds import PAD, VALUE


@dataclass
class ValueScores:
    """Per sequence and attribute: summed loss over the value's tokens, and whether all are right."""

    loss: Float[Tensor, "batch attribute"]
    correct: Float[Tensor, "batch attribute"]  # 1.0 when every value token is the argmax
    top_probability: Float[Tensor, " batch"]  # mean over the sequence's value tokens
    entropy: Float[Tensor, " batch"]  # mean over the sequence's value tokens (nats)


def next_token_loss(logits: Float[Tensor, "batch pos vocab"], batch: Batch) -> Tensor:
    """The training objective: mean next-token cross-entropy over every non-padding target."""
    targets = batch.tokens[:, 1:]
    loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(), reduction="none")
    real = (batch.kind[:, 1:] != PAD).flatten().float()
    return (loss * real).sum() / real.sum()


@dataclass
class TokenScores:
    """Per predicted position (position p scores token p + 1): the value token's NLL, 1.0 when it is not the
    argmax, the top-token probability and the entropy (all 0 off value tokens), and the argmax token."""

    nll: Float[Tensor, "batch pos"]
    wrong: Float[Tensor, "batch pos"]
    top_probability: Float[Tensor, "batch pos"]
    entropy: Float[Tensor, "batch pos"]
    argmax: Int[Tensor, "batch pos"]


@torch.no_grad()
def token_scores(
    logits: Float[Tensor, "batch pos vocab"], tokens: Int[Tensor, "batch pos"], is_value: Bool[Tensor, "batch pos"]
) -> TokenScores:
    """Score the value tokens (`is_value`) of `tokens` from the logits of one forward pass over them, teacher
    forced: the one computation behind the run's metrics (`value_scores`) and retrieval's contexts."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    targets, is_value = tokens[:, 1:], is_value[:, 1:]
    argmax = logp.argmax(-1)
    probs = logp.exp()
    return TokenScores(
        nll=-logp.gather(-1, targets[..., None])[..., 0] * is_value,
        wrong=((argmax != targets) & is_value).float(),
        top_probability=probs.max(-1).values * is_value,
        entropy=-(probs * logp).sum(-1) * is_value,
        argmax=argmax,
    )


def sum_by(index: Int[Tensor, "batch pos"], x: Tensor, n: int) -> Float[Tensor, "batch slot"]:
    """`x` [batch, pos] summed, per row, into `n` slots by `index` (e.g. a value token's attribute)."""
    return torch.zeros(x.shape[0], n, device=x.device).scatter_add_(1, index, x.float())


@torch.no_grad()
def value_scores(logits: Float[Tensor, "batch pos vocab"], batch: Batch, n_attributes: int) -> ValueScores:
    """Score every attribute value of every biography from the logits of one forward pass (one row of
    the scores per biography: a packed row of k biographies gives k rows, in order)."""
    t = token_scores(logits, batch.tokens, batch.kind == VALUE)
    k, b = batch.n_biographies, len(batch.tokens)
    bio = batch.biography[:, 1:].clamp(min=0)
    slot = bio * n_attributes + batch.attribute[:, 1:].long().clamp(min=0)
    loss = sum_by(slot, t.nll, k * n_attributes).reshape(b * k, n_attributes)
    n_wrong = sum_by(slot, t.wrong, k * n_attributes).reshape(b * k, n_attributes)
    n_val = sum_by(bio, batch.kind[:, 1:] == VALUE, k).clamp(min=1)
    return ValueScores(
        loss,
        (n_wrong == 0).float(),
        (sum_by(bio, t.top_probability, k) / n_val).reshape(-1),
        (sum_by(bio, t.entropy, k) / n_val).reshape(-1),
    )


def summarize(scores: ValueScores, attributes: tuple[str, ...], prefix: str = "") -> dict[str, float]:
    """Means over the batch: attribute loss/accuracy (overall and per attribute), confidence."""
    out = {
        f"{prefix}attribute_loss": scores.loss.mean().item(),
        f"{prefix}attribute_accuracy": scores.correct.mean().item(),
        f"{prefix}top_probability": scores.top_probability.mean().item(),
        f"{prefix}entropy": scores.entropy.mean().item(),
    }
    for j, a in enumerate(attributes):
        out[f"{prefix}attribute_loss/{a}"] = scores.loss[:, j].mean().item()
        out[f"{prefix}attribute_accuracy/{a}"] = scores.correct[:, j].mean().item()
    return out


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, batch: Batch, attributes: Sequence[str] | int, chunk: int = 128, hooks: list | None = None
) -> ValueScores:
    """Forward `batch` in chunks (optionally with forward hooks) and score its attribute values.

    attributes: the run's attribute names (config.data.attributes), or just their number."""
    n_attributes = attributes if isinstance(attributes, int) else len(attributes)
    parts = []
    device = next(model.parameters()).device
    for i in range(0, len(batch), chunk):
        sub = batch[i : i + chunk].to(device)
        logits = model.run_with_hooks(sub.tokens, fwd_hooks=hooks) if hooks else model(sub.tokens)
        parts.append(value_scores(logits, sub, n_attributes))
    return ValueScores(*(torch.cat([getattr(p, f) for p in parts]).cpu() for f in ValueScores.__dataclass_fields__))
