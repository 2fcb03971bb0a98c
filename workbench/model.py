"""The only place a model is built: a TransformerLens `HookedTransformer` from a `ModelConfig`.

A later port (TransformerLens 4's TransformerBridge) changes this file only. TransformerLens 3.9
warns on construction that `HookedTransformer` is deprecated; that warning is silenced here, and
only here.

Fast paths for training, checked at every forward (a hook added later is honoured), each falling back to
TransformerLens' own code, unchanged, whenever its condition fails or the call is one TransformerLens handles
differently (a KV cache, attention masks, other architectures). Only in training mode (`model.train()`): a model in
eval mode (evaluation, `Run.load_model`, every analysis) runs TransformerLens' own computation, so analyses stay
bit-identical to what they were and an unhooked baseline equals a forward with identity hooks exactly (ablation
deltas of exactly zero). In training mode:
- attention through `F.scaled_dot_product_attention` (one fused kernel; the pattern is never materialised) in
  every layer where nothing observes `hook_attn_scores` or `hook_pattern` (no TransformerLens hook: patching,
  `run_with_cache`, `run_with_hooks`, `hooks()`; no torch hook on them); `hook_q`, `hook_k`, `hook_v`,
  `hook_rot_q/k` and `hook_z` fire on both paths;
- when nothing in the model is hooked at all (a training forward without patching): LayerNorm as one
  `F.layer_norm`, ln1 computed once per block (TransformerLens normalises the same residual three times, for q, k
  and v) and q, k, v from one matmul. Any hook anywhere turns these off, so every hooked forward (patching,
  `run_with_cache`) is TransformerLens' own computation and equals any other bit for bit.
Fast and eager agree to float32 rounding (tests/test_model.py: logits and gradients within rtol 1e-5, atol 1e-5
on CPU; measured max |diff| 1.5e-6 on logits, 3e-8 on gradients).
"""

from __future__ import annotations

import warnings

import einops
import torch
import torch.nn.functional as F
from torch.nn.modules import module as _torch_module
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.components import Attention, LayerNorm, TransformerBlock
from transformer_lens.components.transformer_block import POST_NORM_ARCHITECTURES
from transformer_lens.utilities.activation_functions import softcap_enabled

from workbench.config import ModelConfig


def model_config(cfg: ModelConfig, d_vocab: int, n_ctx: int, device: str = "cpu") -> HookedTransformerConfig:
    """The HookedTransformerConfig for a model config, a vocabulary and a context length."""
    return HookedTransformerConfig(
        n_layers=cfg.n_layers,
        d_model=cfg.d_model,
        n_heads=cfg.n_heads,
        d_head=cfg.d_head,
        d_mlp=cfg.d_mlp,
        n_ctx=n_ctx,
        d_vocab=d_vocab,
        act_fn=cfg.act_fn,
        normalization_type="LN",
        positional_embedding_type=cfg.positional_embedding_type,
        default_prepend_bos=False,
        device=device,
        seed=None,
    )


def build_model(cfg: ModelConfig, d_vocab: int, n_ctx: int, seed: int, device: str = "cpu") -> HookedTransformer:
    """A freshly initialised HookedTransformer; the init depends only on `seed` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"HookedTransformer is deprecated", category=DeprecationWarning)
        torch.manual_seed(seed)
        model = HookedTransformer(model_config(cfg, d_vocab, n_ctx, "cpu"), move_to_device=False)
    fast = {"unobserved": False}  # set by the model's forward: nothing in the model is hooked
    for module in model.modules():  # same parameters and hook points; see the module docstring
        if type(module) in FAST:
            module.__class__ = FAST[type(module)]
            module._fast = fast
    model.__class__, model._fast = FastHookedTransformer, fast
    model._hook_dicts = tuple(
        d
        for m in model.modules()
        for d in (m._forward_hooks, m._forward_pre_hooks, m._backward_hooks, m._backward_pre_hooks)
    )
    return model.to(device, print_details=False)


def _global_hooks() -> bool:
    """Whether a torch hook is registered on every module."""
    return bool(
        _torch_module._global_forward_hooks
        or _torch_module._global_forward_pre_hooks
        or _torch_module._global_backward_hooks
        or _torch_module._global_backward_pre_hooks
    )


def _observed(point: torch.nn.Module) -> bool:
    """Whether anything reads or writes a HookPoint: a TransformerLens hook, a torch hook on it or on every module."""
    return bool(
        getattr(point, "fwd_hooks", None)
        or getattr(point, "bwd_hooks", None)
        or point._forward_hooks
        or point._forward_pre_hooks
        or point._backward_hooks
        or point._backward_pre_hooks
        or _global_hooks()
    )


class FastAttention(Attention):
    """TransformerLens' `Attention` with an SDPA path taken when nothing observes the attention pattern."""

    def fast_path_applies(self, *extra) -> bool:
        """No hook on hook_attn_scores / hook_pattern, no extra inputs, and a configuration whose eager
        computation is exactly softmax(q k^T / attn_scale + causal mask) v."""
        c = self.cfg
        return (
            self.training
            and all(x is None for x in extra)
            and not _observed(self.hook_pattern)
            and not _observed(self.hook_attn_scores)
            and c.positional_embedding_type in ("standard", "rotary")
            and not c.use_attn_result
            and not c.load_in_4bit
            and not c.use_logn_attn
            and not c.use_attention_sinks
            and c.clip_qkv is None
            and not softcap_enabled(c.attn_scores_soft_cap)
            and not c.use_qk_norm
            and (self._attention_dir_override or c.attention_dir) == "causal"
            and c.original_architecture not in ("OlmoeForCausalLM", "Olmo2ForCausalLM", "Olmo3ForCausalLM")
        )

    def forward(
        self,
        query_input,
        key_input,
        value_input,
        past_kv_cache_entry=None,
        additive_attention_mask=None,
        attention_mask=None,
        position_bias=None,
    ):
        if not self.fast_path_applies(past_kv_cache_entry, additive_attention_mask, attention_mask, position_bias):
            return super().forward(
                query_input,
                key_input,
                value_input,
                past_kv_cache_entry,
                additive_attention_mask,
                attention_mask,
                position_bias,
            )
        if query_input is key_input is value_input and query_input.ndim == 3:  # one matmul for q, k and v
            b, t = query_input.shape[:2]
            w = einops.rearrange(torch.cat([self.W_Q, self.W_K, self.W_V]), "h d_model d_head -> (h d_head) d_model")
            qkv = F.linear(query_input, w, torch.cat([self.b_Q, self.b_K, self.b_V]).reshape(-1))
            q, k, v = qkv.view(b, t, 3, self.cfg.n_heads, self.cfg.d_head).unbind(2)
            q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)
        else:
            q, k, v = self.calculate_qkv_matrices(query_input, key_input, value_input)  # hook_q, hook_k, hook_v
        if self.cfg.positional_embedding_type == "rotary":
            q = self.hook_rot_q(self.apply_rotary(q, 0, None))
            k = self.hook_rot_k(self.apply_rotary(k, 0, None))
        z = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2).to(q.dtype),
            is_causal=True,
            scale=1.0 / float(self.attn_scale),
        )
        z = self.hook_z(z.transpose(1, 2))  # [batch, pos, head_index, d_head]
        w = einops.rearrange(self.W_O, "head_index d_head d_model -> d_model (head_index d_head)")
        if z.dtype != w.dtype:
            z = z.to(w.dtype)
        return F.linear(z.reshape(z.shape[0], z.shape[1], -1), w, self.b_O)


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
        raise ValueError(
            f"model.n_ctx={cfg.n_ctx} is shorter than the longest biography ({longest} tokens): "
            f"allowed n_ctx >= {longest}, or 0 to fit it"
        )
    return cfg.n_ctx or longest


def non_embedding_parameters(model: HookedTransformer) -> int:
    """Parameter count without token/positional embeddings and unembedding (as the study reports)."""
    skip = ("embed.", "pos_embed.", "unembed.")
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith(skip))


def matmul_parameters(model: HookedTransformer) -> int:
    """Parameters that enter a matrix multiply per token: every weight matrix (W_Q, W_K, W_V, W_O, W_in, W_out,
    W_U) but the token and positional embeddings (lookups), without biases and LayerNorm scales."""
    skip = ("embed.", "pos_embed.")
    return sum(
        p.numel()
        for n, p in model.named_parameters()
        if n.rsplit(".", 1)[-1].startswith("W_") and not n.startswith(skip)
    )


def training_flops(model: HookedTransformer, lengths) -> float:
    """FLOPs of one forward + backward over sequences of the given real (unpadded) lengths: per sequence of t
    tokens 6 N t + 12 n_layers (n_heads d_head) t^2, N the matmul parameters (PaLM, appendix B; attention
    scores counted in full, not causally halved). Padding is not counted: it is not useful work."""
    c = model.cfg
    n, attention = matmul_parameters(model), 12 * c.n_layers * c.n_heads * c.d_head
    t = torch.as_tensor(lengths, dtype=torch.float64)
    return float((6 * n * t + attention * t * t).sum())


class FastHookedTransformer(HookedTransformer):
    """The model's forward notes whether anything in it is hooked (TransformerLens or torch hooks on any module);
    the LayerNorm and block fast paths need nothing hooked at all, so that a hooked forward (patching,
    run_with_cache) equals any other hooked forward bit for bit."""

    def forward(self, *args, **kwargs):
        # every module's torch hook dicts (TransformerLens' hooks are torch hooks), gathered at build: ~6 us
        self._fast["unobserved"] = self.training and not (any(self._hook_dicts) or _global_hooks())
        try:
            return super().forward(*args, **kwargs)
        finally:
            self._fast["unobserved"] = False  # a block or LayerNorm called on its own takes the eager path


class FastLayerNorm(LayerNorm):
    """TransformerLens' LayerNorm as one `F.layer_norm` kernel when nothing in the model is hooked (the eager form
    is nine elementwise operations forward, more backward)."""

    def forward(self, x):
        if (
            not self._fast["unobserved"]
            or x.dtype != self.w.dtype
            or self.cfg.dtype not in (torch.float32, torch.float64)
        ):
            return super().forward(x)
        return F.layer_norm(x, (self.length,), self.w, self.b, self.eps)


class FastBlock(TransformerBlock):
    """TransformerLens' block with ln1 computed once for q, k and v (the eager block normalises the same residual
    three times and adds 0.0 to two of them), and q, k, v from one matmul, when nothing in the model is hooked and
    the block is the plain pre-norm one."""

    def fast_path_applies(self, *extra) -> bool:
        c = self.cfg
        return (
            self._fast["unobserved"]
            and all(x is None for x in extra)
            and not c.use_attn_in
            and not c.use_split_qkv_input
            and not c.use_hook_mlp_in
            and not c.attn_only
            and not c.parallel_attn_mlp
            and not c.use_normalization_before_and_after
            and c.original_architecture not in POST_NORM_ARCHITECTURES
            and c.positional_embedding_type != "shortformer"
        )

    def forward(self, resid_pre, shortformer_pos_embed=None, past_kv_cache_entry=None, attention_mask=None):
        if not self.fast_path_applies(shortformer_pos_embed, past_kv_cache_entry, attention_mask):
            return super().forward(resid_pre, shortformer_pos_embed, past_kv_cache_entry, attention_mask)
        resid_pre = self.hook_resid_pre(resid_pre)
        x = self.ln1(resid_pre)
        attn_out = self.hook_attn_out(self.attn(query_input=x, key_input=x, value_input=x))
        resid_mid = self.hook_resid_mid(resid_pre + attn_out)
        return self.hook_resid_post(resid_mid + self.apply_mlp(self.ln2(resid_mid)))


FAST = {Attention: FastAttention, LayerNorm: FastLayerNorm, TransformerBlock: FastBlock}
