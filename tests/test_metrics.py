"""Attribute loss / accuracy on crafted logits: a value is right only when every token is."""

import math

import torch

from workbench.data.batch import Batch
from workbench.data.kinds import BOS, NAME, PAD, TEXT, VALUE
from workbench.metrics import next_token_loss, summarize, value_scores


def _batch() -> Batch:
    # one sequence: BOS, name, text, value(attr 0: 2 tokens), text, value(attr 1: 1 token), PAD
    tokens = torch.tensor([[1, 5, 6, 7, 8, 9, 10, 0]])
    kind = torch.tensor([[BOS, NAME, TEXT, VALUE, VALUE, TEXT, VALUE, PAD]], dtype=torch.int8)
    attribute = torch.tensor([[-1, 0, 0, 0, 0, 1, 1, -1]], dtype=torch.int8)
    value_start = torch.tensor([[0, 0, 0, 1, 0, 0, 1, 0]], dtype=torch.bool)
    return Batch(tokens, kind, attribute, value_start, torch.tensor([0]))


def _logits_predicting(batch: Batch, wrong_at: set[int], vocab: int = 16, margin: float = 5.0) -> torch.Tensor:
    """Logits whose argmax at position p is token p+1, except at positions in `wrong_at`."""
    t = batch.tokens.shape[1]
    logits = torch.zeros(1, t, vocab)
    for p in range(t - 1):
        target = int(batch.tokens[0, p + 1])
        logits[0, p, (target + 1) % vocab if p in wrong_at else target] = margin
    return logits


def test_all_tokens_right_counts_as_correct():
    b = _batch()
    s = value_scores(_logits_predicting(b, set()), b, n_attributes=2)
    assert s.correct.tolist() == [[1.0, 1.0]]


def test_one_wrong_token_makes_the_whole_value_wrong():
    b = _batch()
    # position 3 predicts token 4 = second token of value 0
    s = value_scores(_logits_predicting(b, {3}), b, n_attributes=2)
    assert s.correct.tolist() == [[0.0, 1.0]]
    # a wrong prediction on a text token does not count
    s = value_scores(_logits_predicting(b, {0, 4}), b, n_attributes=2)
    assert s.correct.tolist() == [[1.0, 1.0]]


def test_attribute_loss_sums_over_value_tokens_and_averages_over_values():
    b = _batch()
    logits = torch.zeros(1, 8, 16)  # uniform: each token costs log(16)
    s = value_scores(logits, b, n_attributes=2)
    assert torch.allclose(s.loss, torch.tensor([[2 * math.log(16), math.log(16)]]))
    out = summarize(s, ("a", "b"))
    assert math.isclose(out["attribute_loss"], 1.5 * math.log(16), rel_tol=1e-6)
    assert math.isclose(out["entropy"], math.log(16), rel_tol=1e-6)
    assert math.isclose(out["top_probability"], 1 / 16, rel_tol=1e-6)


def test_training_loss_ignores_padding():
    b = _batch()
    logits = _logits_predicting(b, set())
    logits[0, 6] = torch.randn(16) * 100  # the position predicting PAD: must not matter
    base = next_token_loss(_logits_predicting(b, set()), b)
    assert torch.isclose(next_token_loss(logits, b), base)
