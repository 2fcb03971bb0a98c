"""Measures against an independent computation from the plain model's activation cache."""

import pytest
import torch

from workbench.attribution.measures import MEASURES
from workbench.attribution.shim import HeadView
from workbench.config import preset
from workbench.data.biography_data import BiographyData
from workbench.data.kinds import NAME
from workbench.model import build_model

LAYER, HEAD = 1, 0


@pytest.fixture(scope="module")
def setup():
    cfg = preset("tiny")
    data = BiographyData(cfg)
    model = build_model(cfg.model, data.tokenizer.vocab_size, data.max_length, seed=5)
    batch = data.eval_batch("seen", 6)
    _, cache = model.run_with_cache(batch.tokens)
    return model, batch, cache


def _queries(batch, i):
    """Positions whose next token is the first token of an attribute value, found by a loop."""
    return [p for p in range(batch.tokens.shape[1] - 1) if batch.value_start[i, p + 1]]


def test_attention_measure_is_the_mean_name_mass_at_value_queries(setup):
    model, batch, cache = setup
    got = MEASURES["attention"]()(HeadView(model, LAYER, HEAD), batch)
    pattern = cache[f"blocks.{LAYER}.attn.hook_pattern"][:, HEAD]
    for i in range(len(batch)):
        names = [k for k in range(batch.tokens.shape[1]) if batch.kind[i, k] == NAME]
        masses = [sum(pattern[i, q, k].item() for k in names) for q in _queries(batch, i)]
        assert got[i].item() == pytest.approx(sum(masses) / len(masses), abs=1e-5)


def test_logit_measure_is_the_heads_direct_logit_attribution(setup):
    model, batch, cache = setup
    got = MEASURES["logit"]()(HeadView(model, LAYER, HEAD), batch)
    out = cache[f"blocks.{LAYER}.attn.hook_z"][:, :, HEAD] @ model.blocks[LAYER].attn.W_O[HEAD]
    scale = cache["ln_final.hook_scale"]
    for i in range(len(batch)):
        dlas = []
        for q in _queries(batch, i):
            x = out[i, q] - out[i, q].mean()
            dlas.append((x / scale[i, q, 0] * model.ln_final.w) @ model.unembed.W_U[:, batch.tokens[i, q + 1]])
        assert got[i].item() == pytest.approx(torch.stack(dlas).mean().item(), abs=1e-5)


def test_the_attention_measure_depends_only_on_query_and_key(setup):
    model, batch, _ = setup
    view = HeadView(model, LAYER, HEAD)
    measure = MEASURES["attention"]()
    measure(view, batch).sum().backward()
    assert measure.modules == ("qk",)
    assert view.qk.weight.grad.abs().sum() > 0
    assert view.v.weight.grad is None and view.o.weight.grad is None
