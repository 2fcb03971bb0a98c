"""workbench.model: a loaded checkpoint carries the run's tokenizer, so TransformerLens' text methods work; the
SDPA attention path equals the eager one and gives way to it wherever the pattern is observed."""

from __future__ import annotations

import pytest
import torch


def test_to_str_tokens_round_trips_a_biography(tiny_run):
    model = tiny_run.load_model()
    data = tiny_run.data
    batch = data.eval_batch("seen", 8)
    for row in range(len(batch)):
        text = data.biographer.text(batch, row)
        pieces = model.to_str_tokens(text)
        assert pieces[0] == "<|bos|>"  # strings get BOS, as every training biography has
        assert "".join(pieces[1:]) == text
        assert model.to_string(model.to_tokens(text)[0, 1:]) == text


def test_to_tokens_matches_the_spliced_biography_here(tiny_run):
    """Not guaranteed in general (BPE may merge across segments; a Batch is the exact path), but with
    whole-word names and values the two agree on the tiny preset's biographies."""
    model, data = tiny_run.load_model(), tiny_run.data
    batch = data.eval_batch("seen", 8)
    for row in range(len(batch)):
        n = int(batch.mask[row].sum())
        assert torch.equal(model.to_tokens(data.biographer.text(batch, row))[0], batch.tokens[row, :n])


def test_generate_continues_a_prompt(tiny_run):
    model = tiny_run.load_model()
    prompt = tiny_run.data.biographer.text(tiny_run.data.eval_batch("seen", 1), 0)[:40]
    out = model.generate(prompt, max_new_tokens=4, verbose=False, do_sample=False)
    assert isinstance(out, str) and out.startswith(prompt) and len(out) > len(prompt)


# -- the SDPA attention path (issue 24 item 3) ------------------------------------------------------------------------
# SDPA vs TransformerLens' eager attention on CPU, float32: equal to rounding. Tolerance: rtol 1e-5, atol 1e-5
# on logits and on every parameter's gradient (measured differences: ~1e-6).
TOL = {"rtol": 1e-5, "atol": 1e-5}


def _model_and_batch(positional="standard", seed=3):
    from workbench.config import ModelConfig
    from workbench.model import build_model

    cfg = ModelConfig(n_layers=2, d_model=32, n_heads=4, d_head=8, d_mlp=64, positional_embedding_type=positional)
    model = build_model(cfg, d_vocab=97, n_ctx=40, seed=seed)
    tokens = torch.randint(0, 97, (5, 33), generator=torch.Generator().manual_seed(seed))
    return model, tokens


def _eager(model):
    """A forward through TransformerLens' eager attention: a no-op hook on every hook_pattern."""
    return model.hooks(fwd_hooks=[(lambda n: n.endswith("hook_pattern"), lambda x, hook: None)])


def _paths(model):
    """Which path each attention layer took in the last forward (via a probe of fast_path_applies)."""
    return [block.attn.fast_path_applies() for block in model.blocks]


@pytest.mark.parametrize("positional", ["standard", "rotary"])
def test_sdpa_logits_and_gradients_equal_the_eager_paths(positional):
    model, tokens = _model_and_batch(positional)
    assert all(_paths(model))  # nothing hooks the pattern: SDPA
    fast = model(tokens)
    fast.logsumexp(-1).mean().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    with _eager(model):
        assert not any(_paths(model))
        eager = model(tokens)
        eager.logsumexp(-1).mean().backward()
    torch.testing.assert_close(fast, eager, **TOL)
    for n, p in model.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, **TOL, msg=n)


def _spy_on_sdpa(monkeypatch):
    import workbench.model as wm

    calls = []
    real = wm.F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(wm.F, "scaled_dot_product_attention", spy)
    return calls


def test_run_with_cache_and_pattern_hooks_take_the_eager_path(monkeypatch):
    model, tokens = _model_and_batch()
    calls = _spy_on_sdpa(monkeypatch)
    model(tokens)
    assert len(calls) == 2  # both layers
    calls.clear()
    _, cache = model.run_with_cache(tokens)
    assert not calls and cache["blocks.1.attn.hook_pattern"].shape == (5, 4, 33, 33)
    model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_attn_scores", lambda x, hook: None)])
    assert len(calls) == 1  # layer 1 is unobserved: SDPA there
    calls.clear()
    handle = model.blocks[1].attn.hook_pattern.register_forward_hook(lambda m, i, o: None)  # a raw torch hook
    model(tokens)
    handle.remove()
    assert len(calls) == 1
    calls.clear()
    model.blocks[0].attn.hook_pattern.add_hook(lambda x, hook: None, dir="bwd")  # a gradient hook
    model(tokens).sum().backward()
    model.reset_hooks()
    assert len(calls) == 1


def test_a_pattern_written_by_a_hook_changes_the_output():
    model, tokens = _model_and_batch()

    def uniform(x, hook):
        causal = torch.tril(torch.ones_like(x))
        return causal / causal.sum(-1, keepdim=True)

    patched = model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.attn.hook_pattern", uniform)])
    assert not torch.allclose(patched, model(tokens), atol=1e-3)


def test_q_k_v_z_hooks_fire_on_the_sdpa_path(monkeypatch):
    model, tokens = _model_and_batch()
    calls = _spy_on_sdpa(monkeypatch)
    names = ("hook_q", "hook_k", "hook_v", "hook_z")
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.split(".")[-1] in names)
    assert len(calls) == 2 and len(cache) == 8
    with _eager(model):
        _, eager = model.run_with_cache(tokens, names_filter=lambda n: n.split(".")[-1] in names)
    for name in cache:
        torch.testing.assert_close(cache[name], eager[name], **TOL)


def test_a_kv_cache_generation_takes_the_eager_path(tiny_run):
    model = tiny_run.load_model(40)
    out = model.generate(
        tiny_run.data.eval_batch("seen", 1).tokens[:, :5], max_new_tokens=3, do_sample=False, verbose=False
    )
    assert out.shape == (1, 8)


def test_matmul_parameters_and_training_flops_count_real_work():
    """Issue 24 item 6: the FLOPs of an MFU count matmul parameters (no embeddings) on real tokens only."""
    from workbench.model import matmul_parameters, training_flops

    model, _ = _model_and_batch()
    c = model.cfg
    n = c.n_layers * (4 * c.d_model * c.n_heads * c.d_head + 2 * c.d_model * c.d_mlp) + c.d_model * c.d_vocab
    assert matmul_parameters(model) == n
    lengths = torch.tensor([10, 20, 33])
    attention = 12 * c.n_layers * c.n_heads * c.d_head
    assert training_flops(model, lengths) == sum(6 * n * t + attention * t * t for t in (10, 20, 33))


def test_layernorm_and_block_fast_paths_only_when_nothing_is_hooked(monkeypatch):
    import workbench.model as wm

    model, tokens = _model_and_batch()
    calls = []
    real = wm.F.layer_norm
    monkeypatch.setattr(wm.F, "layer_norm", lambda *a, **k: calls.append(1) or real(*a, **k))
    fast = model(tokens)
    assert len(calls) == 2 * model.cfg.n_layers + 1  # ln1 once per block, ln2, ln_final
    calls.clear()
    hooked = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_resid_post", lambda x, hook: None)])
    logits, _ = model.run_with_cache(tokens, names_filter="blocks.1.mlp.hook_post")
    assert not calls and torch.equal(hooked, logits)  # any hook: TransformerLens' own LayerNorm and block
    torch.testing.assert_close(fast, hooked, **TOL)
    assert not model._fast["unobserved"]  # reset after each forward


def test_a_model_in_eval_mode_runs_transformer_lens_own_code(monkeypatch):
    """Evaluation and every analysis (Run.load_model returns eval mode) stay TransformerLens' computation."""
    model, tokens = _model_and_batch()
    calls = _spy_on_sdpa(monkeypatch)
    model.eval()
    with torch.no_grad():
        plain = model(tokens)
        hooked = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_resid_post", lambda x, hook: None)])
    assert not calls and torch.equal(plain, hooked) and not any(_paths(model))
    model.train()
    model(tokens)
    assert len(calls) == 2
