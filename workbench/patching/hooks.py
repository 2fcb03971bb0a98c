"""Replace a model's attention patterns by a source's, on TransformerLens hook points.

    with patch_patterns(model, ReferencePatterns(ref), layers=[0, 1], heads=None, mix=1.0):
        logits = model(tokens)

A forward pre-hook sees the input tokens and asks the source for all patched layers' patterns at
once; hooks on `blocks.{l}.attn.hook_pattern` [batch, head, query, key] then swap them in:
pattern[:, heads] = mix * reference + (1 - mix) * own. With mix = 1, no gradient reaches the
queries and keys of the patched heads; values, outputs, MLPs and embeddings train as usual.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from transformer_lens import HookedTransformer

from workbench.config import check_indices
from workbench.patching.sources import Patterns, PatternSource


@dataclass
class PatternPatcher:
    """Installs (and removes) the pre-hook and pattern hooks on a model."""

    model: HookedTransformer
    source: PatternSource
    layers: list[int] | None = None  # None: every layer
    heads: list[int] | None = None  # None: every head
    mix: float = 1.0
    _cache: Patterns = field(default_factory=dict, repr=False)
    _handles: list = field(default_factory=list, repr=False)
    _lens_handles: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        cfg = self.model.cfg
        self.layers = check_indices("layers", self.layers, n=cfg.n_layers)
        self.heads = check_indices("heads", self.heads, n=cfg.n_heads)
        if not 0.0 <= self.mix <= 1.0:
            raise ValueError(f"mix={self.mix!r} is out of range: allowed [0, 1]")
        if (self.source.n_layers, self.source.n_heads) != (cfg.n_layers, cfg.n_heads):
            raise ValueError(
                f"pattern source has {self.source.n_layers} layers x {self.source.n_heads} heads; "
                f"the model has {cfg.n_layers} x {cfg.n_heads}"
            )
        if getattr(self.source, "model", None) is self.model:
            raise ValueError(
                "source: the reference model is the patched model itself; load a second copy "
                "(e.g. own_patterns_at(run, step)) to patch a model with its own patterns"
            )
        self._all_heads = self.heads == list(range(cfg.n_heads))

    def _capture(self, module, args, kwargs) -> None:
        tokens = args[0] if args else kwargs.get("input")
        if not torch.is_tensor(tokens) or tokens.dtype not in (torch.int64, torch.int32):
            raise ValueError("attention patching needs token ids as the model's input")
        self._cache = self.source.patterns(tokens, self.layers)

    def _replace(self, pattern: torch.Tensor, hook) -> torch.Tensor:
        ref = self._cache[int(hook.name.split(".")[1])].to(pattern.dtype)
        new = ref if self.mix == 1.0 else self.mix * ref + (1 - self.mix) * pattern
        if self._all_heads:
            return new
        out = pattern.clone()
        out[:, self.heads] = new[:, self.heads]
        return out

    def install(self) -> "PatternPatcher":
        if self._handles:
            raise ValueError("this PatternPatcher is already installed; remove() it first")
        self._handles.append(self.model.register_forward_pre_hook(self._capture, with_kwargs=True))
        for layer in self.layers:  # permanent: run_with_hooks / run_with_cache keep them
            point = self.model.blocks[layer].attn.hook_pattern
            point.add_hook(self._replace, is_permanent=True)
            self._lens_handles.append((point, point.fwd_hooks[-1]))
        return self

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        for point, handle in self._lens_handles:
            handle.hook.remove()
            if handle in point.fwd_hooks:  # model.reset_hooks(including_permanent=True) may have dropped it
                point.fwd_hooks.remove(handle)
        self._handles.clear()
        self._lens_handles.clear()
        self._cache = {}


@contextlib.contextmanager
def patch_patterns(model: HookedTransformer, source: PatternSource, layers=None, heads=None, mix: float = 1.0):
    """Context manager: every forward pass inside uses the source's patterns (see module doc)."""
    patcher = PatternPatcher(model, source, layers, heads, mix).install()
    try:
        yield patcher
    finally:
        patcher.remove()
