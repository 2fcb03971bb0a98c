"""Benchmark: a workbench training step (HookedTransformer) vs a plain PyTorch model of identical
shape using `scaled_dot_product_attention`, on the same batches, measured in one run (interleaved).

    python analysis/bench_train.py [--preset cpu-quick] [--steps 20] [--threads 2]

Prints the median step times and their ratio (target <= 1.2x on CPU). On a CUDA machine it also
prints the paper preset's tokens/s and model FLOP utilisation (MFU, against --peak-tflops).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from workbench.config import preset
from workbench.metrics import next_token_loss
from workbench.training.session import setup
from workbench.training.loop import make_optimizer


class PlainBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_head: int, d_mlp: int):
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_head
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * n_heads * d_head)
        self.out = nn.Linear(n_heads * d_head, d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_mlp), nn.GELU(), nn.Linear(d_mlp, d_model))

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        z = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out(z.transpose(1, 2).reshape(b, t, -1))
        return x + self.mlp(self.ln2(x))


class PlainGPT(nn.Module):
    """The same shape as the workbench's HookedTransformer (LN, learned positions, GELU MLP)."""

    def __init__(self, cfg, d_vocab: int, n_ctx: int):
        super().__init__()
        self.embed, self.pos = nn.Embedding(d_vocab, cfg.d_model), nn.Embedding(n_ctx, cfg.d_model)
        self.blocks = nn.ModuleList(PlainBlock(cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp) for _ in range(cfg.n_layers))
        self.ln_f, self.unembed = nn.LayerNorm(cfg.d_model), nn.Linear(cfg.d_model, d_vocab)

    def forward(self, tokens):
        x = self.embed(tokens) + self.pos(torch.arange(tokens.shape[1], device=tokens.device))
        for block in self.blocks:
            x = block(x)
        return self.unembed(self.ln_f(x))


def step_time(model, opt, batch, autocast) -> float:
    """One training step as the loop does it: forward, loss, backward, clip, AdamW update."""
    t = time.perf_counter()
    with autocast:
        logits = model(batch.tokens)
    loss = next_token_loss(logits, batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if batch.tokens.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="cpu-quick")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU (H100/H200: 989)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = preset(args.preset)
    data, model, device = setup(cfg)
    plain = PlainGPT(cfg.model, data.tokenizer.vocab_size, model.cfg.n_ctx).to(device)
    opts = {"workbench": make_optimizer(model, cfg.train), "plain": make_optimizer(plain, cfg.train)}
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    times = {"workbench": [], "plain": []}
    for s in range(args.steps + 3):
        batch = data.train_batch(s).to(device)
        for name, m in (("workbench", model), ("plain", plain)):  # interleaved: same load for both
            t = step_time(m, opts[name], batch, autocast)
            if s >= 3:
                times[name].append(t)
    med = {k: statistics.median(v) for k, v in times.items()}
    n_params = sum(p.numel() for p in model.parameters())
    tokens = cfg.train.batch_size * batch.tokens.shape[1]
    out = {"preset": args.preset, "device": device, "threads": args.threads, "batch": list(batch.tokens.shape),
           "median_step_s": med, "ratio_workbench_over_plain": med["workbench"] / med["plain"], "target_ratio": 1.2,
           "workbench_tokens_per_s": tokens / med["workbench"]}
    if device == "cuda":
        flops = 6 * n_params * tokens
        out["mfu"] = flops / med["workbench"] / (args.peak_tflops * 1e12)
        out["paper_run_minutes_estimate"] = med["workbench"] * cfg.train.steps / 60
    print(json.dumps(out, indent=2))
    print(f"workbench step {med['workbench'] * 1e3:.1f} ms vs plain SDPA {med['plain'] * 1e3:.1f} ms: "
          f"ratio {out['ratio_workbench_over_plain']:.2f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
