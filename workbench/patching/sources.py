"""Where replacement attention patterns come from (docs/method.md §4.3).

A source maps the input tokens of a forward pass to post-softmax patterns for every layer,
detached from any graph (stop-gradient): a frozen reference model's own patterns on the same
input (a reference checkpoint, or the model's own run frozen at step s), or the uniform causal
pattern.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

Patterns = dict[int, Float[Tensor, "batch head query key"]]


class PatternSource:
    """Computes the patterns for `layers` on `tokens` (no gradient)."""

    n_layers: int
    n_heads: int

    def patterns(self, tokens: Int[Tensor, "batch pos"], layers: list[int]) -> Patterns:
        raise NotImplementedError


class ReferencePatterns(PatternSource):
    """The patterns a frozen reference model computes on the same input.

    The reference is put in eval mode and only ever run under no_grad (its weights never change);
    it must be another instance than the patched model (load a second copy to self-patch).
    """

    def __init__(self, reference: HookedTransformer):
        self.model = reference.eval()
        self.n_layers, self.n_heads = reference.cfg.n_layers, reference.cfg.n_heads

    @torch.no_grad()
    def patterns(self, tokens: Int[Tensor, "batch pos"], layers: list[int]) -> Patterns:
        names = {f"blocks.{layer}.attn.hook_pattern" for layer in layers}
        out: Patterns = {}

        def keep(pattern: Tensor, hook) -> None:
            out[int(hook.name.split(".")[1])] = pattern.detach()

        device = next(self.model.parameters()).device
        self.model.run_with_hooks(
            tokens.to(device), fwd_hooks=[(lambda n: n in names, keep)], stop_at_layer=max(layers) + 1
        )
        return out


class UniformPatterns(PatternSource):
    """Uniform attention over all causally visible positions (BOS included)."""

    def __init__(self, n_layers: int, n_heads: int):
        self.n_layers, self.n_heads = n_layers, n_heads

    def patterns(self, tokens: Int[Tensor, "batch pos"], layers: list[int]) -> Patterns:
        b, t = tokens.shape
        causal = torch.tril(torch.ones(t, t, device=tokens.device))
        uniform = (causal / causal.sum(-1, keepdim=True)).expand(b, self.n_heads, t, t)
        return {layer: uniform for layer in layers}


def own_patterns_at(run, step: int, device: str = "cpu") -> ReferencePatterns:
    """The run's own patterns frozen at checkpoint `step` (`run`: a `Run` or a run directory)."""
    from workbench.run import Run, load_run

    run = run if isinstance(run, Run) else load_run(run)
    return ReferencePatterns(run.load_model(step, device))
