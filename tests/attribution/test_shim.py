"""HeadView: the same logits as the plain model, and the head's gradients in its three Linear modules."""

import pytest
import torch

from workbench.attribution.shim import HeadView
from workbench.config import preset
from workbench.data.biography_data import BiographyData
from workbench.model import build_model


@pytest.fixture(scope="module")
def model_and_batch():
    cfg = preset("tiny")
    data = BiographyData(cfg)
    model = build_model(cfg.model, data.tokenizer.vocab_size, data.max_length, seed=3)
    with torch.no_grad():  # non-zero biases, so that they are tested too
        for p in model.parameters():
            if p.ndim == 2 and p.shape[0] == cfg.model.n_heads or p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model, data.eval_batch("seen", 8)


@pytest.mark.parametrize("layer, head", [(0, 0), (1, 1)])
def test_logits_equal_the_plain_model(model_and_batch, layer, head):
    model, batch = model_and_batch
    view = HeadView(model, layer, head)
    with torch.no_grad():
        assert torch.allclose(view(batch.tokens), model(batch.tokens), atol=1e-5, rtol=0)
    assert not any(p.requires_grad for p in view.model.parameters())
    assert view.captured["pattern"].shape == (len(batch), batch.tokens.shape[1], batch.tokens.shape[1])


def test_gradients_are_the_heads_parameter_gradients(model_and_batch):
    model, batch = model_and_batch
    layer, head, d = 1, 1, model.cfg.d_head
    view = HeadView(model, layer, head)
    view(batch.tokens).logsumexp(-1).mean().backward()
    model.zero_grad()
    model(batch.tokens).logsumexp(-1).mean().backward()
    attn = model.blocks[layer].attn
    want_qk = torch.cat([attn.W_Q.grad[head], attn.W_K.grad[head]], 1).T
    assert torch.allclose(view.qk.weight.grad, want_qk, atol=1e-6)
    assert torch.allclose(view.qk.bias.grad[:d], attn.b_Q.grad[head], atol=1e-6)
    assert torch.allclose(view.v.weight.grad, attn.W_V.grad[head].T, atol=1e-6)
    assert torch.allclose(view.o.weight.grad, attn.W_O.grad[head].T, atol=1e-6)
    assert view.qk.weight.grad.abs().sum() > 0
    model.zero_grad()


@pytest.mark.parametrize(
    "layer, head, message",
    [(2, 0, "layer=2 is out of range: allowed an integer in [0, 1]"), (0, -1, "head=-1 is out of range")],
)
def test_a_head_outside_the_model_is_refused(model_and_batch, layer, head, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        HeadView(model_and_batch[0], layer, head)
