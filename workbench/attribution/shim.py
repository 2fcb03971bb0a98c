"""`HeadView`: one attention head of a frozen model as three `nn.Linear` modules, for influence functions.

EK-FAC (`ekfac.py`) tracks `nn.Linear` modules; TransformerLens stores a layer's heads as einsum
parameters. The view keeps a frozen deep copy of the model and re-expresses head (layer, head) as

* ``qk``: Linear(d_model, 2 d_head) = [W_Q | W_K] of the head, with [b_Q | b_K],
* ``v``:  Linear(d_model, d_head)   = W_V, b_V,
* ``o``:  Linear(d_head, d_model, no bias) = W_O (b_O stays in the frozen layer),

all reading the layer's ln1 output. Hooks overwrite the head's slice of hook_q / hook_k / hook_v (before
rotary, so rotary models work too), zero the head's W_O in the copy and add ``o(z_head)`` at
hook_attn_out: the logits are the model's own, and the gradient of any loss with respect to the three
modules is the gradient with respect to the head's parameters. Only these modules are trainable.
"""

from __future__ import annotations

import copy

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

MODULES = ("qk", "v", "o")


def check_head_index(n_layers: int, n_heads: int, layer: int, head: int) -> None:
    """A ValueError naming the field and its allowed range when (layer, head) is not a head of the model."""
    for name, value, n in (("layer", layer, n_layers), ("head", head, n_heads)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n:
            raise ValueError(f"{name}={value!r} is out of range: allowed an integer in [0, {n - 1}]")


def check_head(model_config, layer: int, head: int) -> None:
    """`check_head_index` for a `ModelConfig` (before any model is loaded)."""
    check_head_index(model_config.n_layers, model_config.n_heads, layer, head)


class HeadView(nn.Module):
    """Head (layer, head) of `model` as trainable Linear modules over a frozen copy (module docstring).

    After a forward, `captured` holds "pattern" [batch query key] (the head's attention, differentiable),
    "head_out" [batch pos d_model] (what the head writes to the residual stream, without b_O) and
    "final_scale" [batch pos 1] (ln_final's scale, detached: direct-logit attribution freezes it)."""

    def __init__(self, model: nn.Module, layer: int, head: int):
        super().__init__()
        cfg = model.cfg
        check_head_index(cfg.n_layers, cfg.n_heads, layer, head)
        if cfg.positional_embedding_type not in ("standard", "rotary"):
            raise ValueError(
                f"positional_embedding_type={cfg.positional_embedding_type!r} is not supported: "
                f"allowed standard | rotary"
            )
        self.layer, self.head, self.d_head = layer, head, cfg.d_head
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)
        attn = self.model.blocks[layer].attn
        d_model, d_head = cfg.d_model, cfg.d_head
        self.qk = nn.Linear(d_model, 2 * d_head, device=attn.W_Q.device, dtype=attn.W_Q.dtype)
        self.v = nn.Linear(d_model, d_head, device=attn.W_Q.device, dtype=attn.W_Q.dtype)
        self.o = nn.Linear(d_head, d_model, bias=False, device=attn.W_Q.device, dtype=attn.W_Q.dtype)
        with torch.no_grad():
            self.qk.weight.copy_(torch.cat([attn.W_Q[head], attn.W_K[head]], 1).T)
            self.qk.bias.copy_(torch.cat([attn.b_Q[head], attn.b_K[head]]))
            self.v.weight.copy_(attn.W_V[head].T)
            self.v.bias.copy_(attn.b_V[head])
            self.o.weight.copy_(attn.W_O[head].T)
            attn.W_O[head] = 0.0
        self.captured: dict[str, Tensor] = {}

    def __getstate__(self) -> dict:  # copies and pickles leave out the last forward's activations
        state = {k: v for k, v in self.__dict__.items() if k not in ("_qkv", "_z")}
        return {**state, "captured": {}}

    @property
    def cfg(self):
        return self.model.cfg

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos vocab"]:
        self.captured = {}
        prefix = f"blocks.{self.layer}"  # hooks built per call: bound to this module, also after a deepcopy
        hooks = [
            (f"{prefix}.hook_resid_pre", self._read_input),
            (f"{prefix}.attn.hook_q", self._slice(0)),
            (f"{prefix}.attn.hook_k", self._slice(1)),
            (f"{prefix}.attn.hook_v", self._slice(2)),
            (f"{prefix}.attn.hook_pattern", self._read_pattern),
            (f"{prefix}.attn.hook_z", self._read_z),
            (f"{prefix}.hook_attn_out", self._write_output),
            ("ln_final.hook_scale", self._read_scale),
        ]
        return self.model.run_with_hooks(tokens, fwd_hooks=hooks)

    # -- hooks -----------------------------------------------------------------------------------------
    def _read_input(self, resid_pre: Float[Tensor, "batch pos d_model"], hook) -> None:
        x = self.model.blocks[self.layer].ln1(resid_pre)  # what W_Q, W_K, W_V read
        qk = self.qk(x)
        self._qkv = (qk[..., : self.d_head], qk[..., self.d_head :], self.v(x))  # each [batch pos d_head]

    def _slice(self, i: int):
        def hook(act: Float[Tensor, "batch pos head d_head"], hook) -> Tensor:
            act = act.clone()
            act[:, :, self.head] = self._qkv[i]
            return act

        return hook

    def _read_pattern(self, pattern: Float[Tensor, "batch head query key"], hook) -> None:
        self.captured["pattern"] = pattern[:, self.head]

    def _read_z(self, z: Float[Tensor, "batch pos head d_head"], hook) -> None:
        self._z = z[:, :, self.head]

    def _write_output(self, attn_out: Float[Tensor, "batch pos d_model"], hook) -> Tensor:
        head_out = self.o(self._z)
        self.captured["head_out"] = head_out
        return attn_out + head_out

    def _read_scale(self, scale: Float[Tensor, "batch pos 1"], hook) -> None:
        self.captured["final_scale"] = scale.detach()
