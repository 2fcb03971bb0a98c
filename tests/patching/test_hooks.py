"""patch_patterns / PatternPatcher: exact self-patching, removal, TransformerLens hook APIs, gradients."""

import pytest
import torch

from workbench.metrics import next_token_loss
from workbench.patching.hooks import PatternPatcher, patch_patterns
from workbench.patching.sources import ReferencePatterns, UniformPatterns


@pytest.fixture(scope="module")
def model(tiny_run):
    return tiny_run.load_model(40)


@pytest.fixture(scope="module")
def twin(tiny_run):
    """A second, independent copy of the same checkpoint."""
    return ReferencePatterns(tiny_run.load_model(40))


@pytest.fixture(scope="module")
def early(tiny_run):
    return ReferencePatterns(tiny_run.load_model(0))


def _no_hooks_left(model) -> bool:
    points = [b.attn.hook_pattern for b in model.blocks]
    return not model._forward_pre_hooks and all(not p.fwd_hooks and not p._forward_hooks for p in points)


@pytest.mark.parametrize("kwargs", [{}, {"layers": [1]}, {"heads": [1]}, {"layers": [0], "heads": [0]}, {"mix": 0.5}])
def test_self_patching_leaves_logits_exactly_unchanged(model, twin, eval_tokens, kwargs):
    base = model(eval_tokens)
    with patch_patterns(model, twin, **kwargs):
        patched = model(eval_tokens)
    assert torch.equal(patched, base)


def test_other_patterns_change_logits_and_are_removed_on_exit(model, early, eval_tokens):
    base = model(eval_tokens)
    with patch_patterns(model, early):
        patched = model(eval_tokens)
        assert torch.equal(model(eval_tokens), patched)  # stays installed across calls
    assert not torch.allclose(patched, base, atol=1e-4)
    assert torch.equal(model(eval_tokens), base)
    assert _no_hooks_left(model)


def test_patching_is_removed_when_the_body_raises(model, early, eval_tokens):
    base = model(eval_tokens)
    with pytest.raises(RuntimeError, match="boom"):
        with patch_patterns(model, early):
            model(eval_tokens)
            raise RuntimeError("boom")
    assert torch.equal(model(eval_tokens), base)
    assert _no_hooks_left(model)


def test_patching_survives_run_with_cache_and_run_with_hooks(model, early, eval_tokens):
    reference = early.model
    _, ref_cache = reference.run_with_cache(eval_tokens)
    seen = []
    with patch_patterns(model, early, heads=[0]):
        patched = model(eval_tokens)
        logits, cache = model.run_with_cache(eval_tokens)
        hooked = model.run_with_hooks(
            eval_tokens, fwd_hooks=[("blocks.1.hook_resid_pre", lambda x, hook: seen.append(1))]
        )
        again = model(eval_tokens)  # run_with_hooks resets its own hooks, not the permanent ones
    assert torch.equal(logits, patched) and torch.equal(hooked, patched) and torch.equal(again, patched)
    assert seen == [1]
    for layer in range(model.cfg.n_layers):
        name = f"blocks.{layer}.attn.hook_pattern"
        assert torch.equal(cache[name][:, 0], ref_cache[name][:, 0])  # patched head
        assert not torch.allclose(cache[name][:, 1], ref_cache[name][:, 1])  # the model's own head


def test_mix_blends_own_and_reference_patterns(model, early, eval_tokens):
    _, own = model.run_with_cache(eval_tokens)
    _, ref = early.model.run_with_cache(eval_tokens)
    with patch_patterns(model, early, layers=[0], mix=0.25):
        _, cache = model.run_with_cache(eval_tokens)
    name = "blocks.0.attn.hook_pattern"
    torch.testing.assert_close(cache[name], 0.25 * ref[name] + 0.75 * own[name])


def _grads(run, patched_layers):
    model = run.load_model(0).train()
    batch = run.data.train_batch(0)
    with patch_patterns(model, ReferencePatterns(run.load_model(40)), layers=patched_layers):
        next_token_loss(model(batch.tokens), batch).backward()
    return {n: p.grad for n, p in model.named_parameters()}


def _zero(g) -> bool:
    return g is None or torch.count_nonzero(g) == 0


def test_full_patching_blocks_query_and_key_gradients_only(tiny_run):
    grads = _grads(tiny_run, None)
    for layer in range(tiny_run.config.model.n_layers):
        for p in ("W_Q", "W_K", "b_Q", "b_K"):
            assert _zero(grads[f"blocks.{layer}.attn.{p}"]), f"layer {layer} {p} got gradient through the patterns"
        for p in ("attn.W_V", "attn.W_O", "mlp.W_in", "mlp.W_out"):
            assert not _zero(grads[f"blocks.{layer}.{p}"]), f"layer {layer} {p} got no gradient"
    assert not _zero(grads["embed.W_E"])


def test_patching_layer_0_only_leaves_layer_1_queries_trainable(tiny_run):
    grads = _grads(tiny_run, [0])
    assert _zero(grads["blocks.0.attn.W_Q"]) and _zero(grads["blocks.0.attn.W_K"])
    assert not _zero(grads["blocks.1.attn.W_Q"]) and not _zero(grads["blocks.1.attn.W_K"])


def test_uniform_patterns_average_over_causal_positions(model, eval_tokens):
    source = UniformPatterns(model.cfg.n_layers, model.cfg.n_heads)
    pats = source.patterns(eval_tokens, [0, 1])
    t = eval_tokens.shape[1]
    p = pats[1]
    assert p.shape == (len(eval_tokens), model.cfg.n_heads, t, t)
    torch.testing.assert_close(p.sum(-1), torch.ones(p.shape[:-1]))
    assert torch.all(p.triu(1) == 0)
    torch.testing.assert_close(p[0, 0, 4, :5], torch.full((5,), 0.2))
    with patch_patterns(model, source):
        _, cache = model.run_with_cache(eval_tokens)
    assert torch.equal(cache["blocks.0.attn.hook_pattern"], pats[0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"layers": [2]}, r"layers\[\]=2 is out of range: allowed an integer in \[0, 1\]"),
        ({"layers": [-1]}, "layers"),
        ({"heads": [5]}, "heads"),
        ({"heads": [1, 1]}, "heads=.* allowed distinct indices"),
        ({"mix": 1.5}, "mix"),
    ],
)
def test_bad_arguments_raise_before_any_hook(model, early, kwargs, match):
    with pytest.raises(ValueError, match=match):
        PatternPatcher(model, early, **kwargs)
    assert _no_hooks_left(model)


def test_mismatched_source_and_self_reference_are_rejected(model):
    with pytest.raises(ValueError, match="layers"):
        PatternPatcher(model, UniformPatterns(3, model.cfg.n_heads))
    with pytest.raises(ValueError, match="second copy"):
        PatternPatcher(model, ReferencePatterns(model))
