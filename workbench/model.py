"""The only place a model is built: a TransformerLens `HookedTransformer` from a `ModelConfig`.

A later port (TransformerLens 4's TransformerBridge) changes this file only. TransformerLens 3.9
warns on construction that `HookedTransformer` is deprecated; that warning is silenced here, and
only here.
"""

from __future__ import annotations

import warnings

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from workbench.config import ModelConfig


def model_config(cfg: ModelConfig, d_vocab: int, n_ctx: int, device: str = "cpu") -> HookedTransformerConfig:
    """The HookedTransformerConfig for a model config, a vocabulary and a context length."""
    return HookedTransformerConfig(
        n_layers=cfg.n_layers, d_model=cfg.d_model, n_heads=cfg.n_heads, d_head=cfg.d_head,
        d_mlp=cfg.d_mlp, n_ctx=n_ctx, d_vocab=d_vocab, act_fn=cfg.act_fn,
        normalization_type="LN", positional_embedding_type=cfg.positional_embedding_type,
        default_prepend_bos=False, device=device, seed=None,
    )


def build_model(cfg: ModelConfig, d_vocab: int, n_ctx: int, seed: int, device: str = "cpu") -> HookedTransformer:
    """A freshly initialised HookedTransformer; the init depends only on `seed` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"HookedTransformer is deprecated", category=DeprecationWarning)
        torch.manual_seed(seed)
        model = HookedTransformer(model_config(cfg, d_vocab, n_ctx, "cpu"), move_to_device=False)
    return model.to(device, print_details=False)


def attach_tokenizer(model: HookedTransformer, tokenizer) -> HookedTransformer:
    """Give `model` the run's tokenizer (a `BiographyTokenizer`) so that `to_tokens`, `to_str_tokens`,
    `to_string` and `generate` work on text, with BOS prepended to strings as in training.

    Encoding a whole string lets BPE merge across the boundaries of names, values and template text, so it can
    differ from a training biography's tokens, which are spliced from pre-tokenized segments; a `Batch` is
    the exact path. (TransformerLens' `set_tokenizer` would re-load the tokenizer from a hub name; it is
    assigned directly instead, so nothing is looked up or downloaded.)"""
    model.tokenizer = tokenizer.to_transformers()
    model.cfg.default_prepend_bos = True
    model.cfg.tokenizer_prepends_bos = False
    return model


def context_length(cfg: ModelConfig, longest: int) -> int:
    """cfg.n_ctx, or the longest possible biography (`longest` tokens) when 0; shorter is an error."""
    if cfg.n_ctx and cfg.n_ctx < longest:
        raise ValueError(f"model.n_ctx={cfg.n_ctx} is shorter than the longest biography ({longest} tokens): "
                         f"allowed n_ctx >= {longest}, or 0 to fit it")
    return cfg.n_ctx or longest


def non_embedding_parameters(model: HookedTransformer) -> int:
    """Parameter count without token/positional embeddings and unembedding (as the study reports)."""
    skip = ("embed.", "pos_embed.", "unembed.")
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith(skip))
