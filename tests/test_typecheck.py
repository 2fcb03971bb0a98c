"""The jaxtyping annotations are checked at test time (beartype, installed by conftest): a call with a
tensor of the wrong rank or dtype fails in the test suite instead of passing silently."""

import pytest
import torch

from workbench.data.batch import Batch
from workbench.metrics import value_scores


def test_wrong_shapes_are_caught_at_test_time(tiny_data):
    batch = tiny_data.eval_batch("seen", 2)
    logits = torch.zeros(2, batch.tokens.shape[1], tiny_data.tokenizer.vocab_size)
    value_scores(logits, batch, 6)  # right shapes: fine
    with pytest.raises(Exception, match="(?i)type-check|violat"):
        value_scores(torch.zeros(2, 7), batch, 6)  # [batch vocab] where [batch pos vocab] is declared
    with pytest.raises(Exception, match="(?i)type-check|violat"):
        Batch(batch.tokens.float(), batch.kind, batch.attribute, batch.value_start, batch.individuals)  # not Int
