"""Pattern sources: a reference's patterns equal its own cached patterns, detached; own_patterns_at."""

import pytest
import torch

from workbench.patching.sources import ReferencePatterns, own_patterns_at


def test_reference_patterns_match_the_reference_cache_and_carry_no_graph(tiny_run, eval_tokens):
    reference = tiny_run.load_model(20)
    _, cache = reference.run_with_cache(eval_tokens)
    pats = ReferencePatterns(reference).patterns(eval_tokens, [0])
    assert set(pats) == {0}
    assert torch.equal(pats[0], cache["blocks.0.attn.hook_pattern"])
    assert not pats[0].requires_grad
    assert all(p.requires_grad for p in reference.parameters())  # the caller's model is not frozen


def test_own_patterns_at_is_the_run_frozen_at_that_step(tiny_run, eval_tokens):
    source = own_patterns_at(tiny_run, 30)
    other = own_patterns_at(tiny_run.path, 10)
    _, cache = tiny_run.load_model(30).run_with_cache(eval_tokens)
    got = source.patterns(eval_tokens, [0, 1])
    assert torch.equal(got[1], cache["blocks.1.attn.hook_pattern"])
    assert not torch.allclose(other.patterns(eval_tokens, [1])[1], got[1])
    with pytest.raises(ValueError, match="step=7"):
        own_patterns_at(tiny_run, 7)


def test_public_api_is_importable():
    import workbench.patching as patching

    missing = [name for name in patching.__all__ if not callable(getattr(patching, name, None))]
    assert not missing
