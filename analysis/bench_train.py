"""Benchmark the training step and the training loop (issue 24 items 3 and 6), measured in one run.

    python analysis/bench_train.py [--preset cpu-quick] [--steps 20] [--threads 1] [--loop-steps 300]
        [--peak-tflops 989] [--checkpoint-preset paper] [--json]

1. The step: a workbench training step (HookedTransformer on its fast paths, `workbench/model.py`: SDPA attention,
   one LayerNorm kernel, ln1 once per block, one q/k/v matmul), the same model on TransformerLens' own code (a
   no-op hook on every hook_pattern turns the fast paths off), and a plain PyTorch model of identical shape using
   `scaled_dot_product_attention`, interleaved on the same batches (same load for all three). Prints the median
   step times and the ratios (target: workbench / plain <= 1.05).
2. The loop: `workbench.experiment.train` of the preset for --loop-steps steps into a temporary directory, with the
   preset's evaluation cadence and the first --loop-steps steps of its checkpoint schedule. Wall time, and within
   it evaluations and checkpoints (the training thread's share: snapshots and waits; the background writer's
   time is printed apart); tokens/s counted on real (unpadded) tokens; TFLOP/s from `workbench.model.training_flops`
   (6 N t + 12 L d t^2 per sequence, N the matmul parameters, no embeddings, no padding); on CUDA the MFU against
   --peak-tflops, over the whole loop and without evaluations and checkpoints. The checkpoint share is also
   projected to the full run (its whole schedule and evaluation count).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from workbench.config import preset
from workbench.metrics import next_token_loss
from workbench.model import matmul_parameters, training_flops
from workbench.training import callbacks
from workbench.training.checkpoint import scheduled_steps
from workbench.training.loop import autocast, make_optimizer, resolve_precision
from workbench.training.session import setup


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
        self.blocks = nn.ModuleList(
            PlainBlock(cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp) for _ in range(cfg.n_layers)
        )
        self.ln_f, self.unembed = nn.LayerNorm(cfg.d_model), nn.Linear(cfg.d_model, d_vocab)

    def forward(self, tokens):
        x = self.embed(tokens) + self.pos(torch.arange(tokens.shape[1], device=tokens.device))
        for block in self.blocks:
            x = block(x)
        return self.unembed(self.ln_f(x))


class Eager(nn.Module):
    """The workbench model on TransformerLens' own code: a no-op hook on every hook_pattern (any hook turns the fast
    paths of workbench/model.py off)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, tokens):
        with self.model.hooks(fwd_hooks=[(lambda n: n.endswith("hook_pattern"), lambda x, hook: None)]):
            return self.model(tokens)


def step_time(model, opt, batch, dtype) -> float:
    """One training step as the loop does it: forward, loss, backward, clip, AdamW update."""
    device = batch.tokens.device.type
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    with autocast(device, dtype):
        logits = model(batch.tokens)
    loss = next_token_loss(logits, batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def bench_step(cfg, steps: int) -> dict:
    data, model, device = setup(cfg)
    dtype = resolve_precision(cfg.train, device)
    twin = setup(cfg)[1]  # the same initial weights, for the eager path
    plain = PlainGPT(cfg.model, data.tokenizer.vocab_size, model.cfg.n_ctx).to(device)
    models = {"workbench": model, "eager": Eager(twin), "plain": plain}
    opts = {k: make_optimizer(m, cfg.train, device) for k, m in models.items()}
    times: dict[str, list[float]] = {k: [] for k in models}
    for s in range(steps + 3):
        batch = data.train_batch(s).to(device)
        for name, m in models.items():  # interleaved: the same load for all
            t = step_time(m, opts[name], batch, dtype)
            if s >= 3:
                times[name].append(t)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "device": device,
        "median_step_s": med,
        "workbench_over_plain": med["workbench"] / med["plain"],
        "eager_over_plain": med["eager"] / med["plain"],
        "target_workbench_over_plain": 1.05,
    }


def bench_loop(cfg, steps: int, peak_tflops: float, workdir: Path) -> dict:
    """The real loop for `steps` steps (the preset's cadence), timed by parts."""
    from workbench.experiment import train

    full = cfg.train
    schedule = scheduled_steps(full)
    run_cfg = cfg.replace(
        train={"steps": steps, "checkpoint_steps": tuple(s for s in schedule if s <= steps), "n_checkpoints": 0}
    )
    spent = {"evaluation": 0.0, "writer": 0.0}
    made: list = []
    real = real_evaluate, real_save, real_init = (
        callbacks.Evaluator.evaluate,
        callbacks.save_tensors,
        callbacks.Checkpointer.__init__,
    )

    def evaluate(self, state):
        t = time.perf_counter()
        real_evaluate(self, state)
        spent["evaluation"] += time.perf_counter() - t

    def save_tensors(*args, **kwargs):
        t = time.perf_counter()
        out = real_save(*args, **kwargs)
        spent["writer"] += time.perf_counter() - t
        return out

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        made.append(self)

    callbacks.Evaluator.evaluate, callbacks.save_tensors, callbacks.Checkpointer.__init__ = evaluate, save_tensors, init
    try:
        t = time.perf_counter()
        train(run_cfg, workdir / "loop", progress=False)
        wall = time.perf_counter() - t
    finally:
        callbacks.Evaluator.evaluate, callbacks.save_tensors, callbacks.Checkpointer.__init__ = real
    data, model, device = setup(run_cfg)
    lengths = torch.cat([data.train_batch(s).mask.sum(1) for s in range(steps)])
    flops = training_flops(model, lengths)
    checkpoint = made[0].write_s
    steps_only = wall - spent["evaluation"] - checkpoint
    n_evals = len(range(0, steps + 1, full.eval_every))
    n_evals_full = len(range(0, full.steps + 1, full.eval_every))
    per_ckpt = checkpoint / len(run_cfg.train.checkpoint_steps)
    projected_wall = (
        steps_only / steps * full.steps + spent["evaluation"] / n_evals * n_evals_full + per_ckpt * len(schedule)
    )
    out = {
        "steps": steps,
        "wall_s": wall,
        "evaluation_s": spent["evaluation"],
        "checkpoint_s": checkpoint,
        "checkpoints": len(run_cfg.train.checkpoint_steps),
        "background_writer_s": spent["writer"],
        "steps_only_s": steps_only,
        "real_tokens": int(lengths.sum()),
        "matmul_parameters": matmul_parameters(model),
        "flop_per_step": flops / steps,
        "tokens_per_s": float(lengths.sum()) / wall,
        "tokens_per_s_steps_only": float(lengths.sum()) / steps_only,
        "tflop_per_s": flops / wall / 1e12,
        "tflop_per_s_steps_only": flops / steps_only / 1e12,
        "checkpoint_share": checkpoint / wall,
        "checkpoint_share_projected_full_run": per_ckpt * len(schedule) / projected_wall,
        "full_run_checkpoints": len(schedule),
    }
    if device == "cuda":
        out["mfu"] = flops / wall / (peak_tflops * 1e12)
        out["mfu_steps_only"] = flops / steps_only / (peak_tflops * 1e12)
    return out


def bench_checkpoint(cfg, workdir: Path) -> dict:
    """One checkpoint of the preset's model with AdamW state, three ways: the previous synchronous write
    (safetensors' save_file, then the file re-read for its sha256), and now the training thread's share (a
    snapshot of the tensors) and the background writer's (serialise, hash while writing, fsync, rename)."""
    from safetensors.torch import save_file

    from workbench.atomic import atomic_path, sha256
    from workbench.model import build_model
    from workbench.training.checkpoint import optimizer_tensors, save_tensors

    model = build_model(cfg.model, cfg.data.vocab_size, 128, 0)
    opt = make_optimizer(model, cfg.train)
    model(torch.zeros(1, 8, dtype=torch.long)).sum().backward()
    opt.step()  # AdamW state exists
    opt_t, meta = optimizer_tensors(opt)
    t = time.perf_counter()
    for name, tensors in (("w", model.state_dict()), ("o", opt_t)):
        with atomic_path(workdir / f"old-{name}") as tmp:  # fsync and rename, as before
            save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(tmp))
        sha256(workdir / f"old-{name}")
    old = time.perf_counter() - t
    t = time.perf_counter()
    snap = [callbacks.Checkpointer._snapshot(model.state_dict()), callbacks.Checkpointer._snapshot(opt_t)]
    snapshot = time.perf_counter() - t
    t = time.perf_counter()
    save_tensors(workdir / "new-w.safetensors", snap[0])
    save_tensors(workdir / "new-o.safetensors", snap[1], meta)
    writer = time.perf_counter() - t
    mb = sum((workdir / f).stat().st_size for f in ("new-w.safetensors", "new-o.safetensors")) / 1e6
    return {
        "megabytes": mb,
        "previous_synchronous_s": old,
        "training_thread_snapshot_s": snapshot,
        "background_writer_s": writer,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="cpu-quick")
    ap.add_argument("--steps", type=int, default=20, help="timed steps of the step comparison")
    ap.add_argument("--loop-steps", type=int, default=300, help="steps of the timed loop (0: skip it)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU (H100/H200: 989)")
    ap.add_argument(
        "--checkpoint-preset",
        default=None,
        help="also time one checkpoint of this preset's model "
        "(e.g. paper: 134 MB of weights, 269 MB of optimizer state)",
    )
    ap.add_argument("--json", action="store_true", help="print the JSON only")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = preset(args.preset)
    out = {"preset": args.preset, "threads": args.threads, "step": bench_step(cfg, args.steps)}
    if args.loop_steps:
        with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
            out["loop"] = bench_loop(cfg, args.loop_steps, args.peak_tflops, Path(tmp))
    if args.checkpoint_preset:
        with tempfile.TemporaryDirectory(prefix="bench-checkpoint-") as tmp:
            out["checkpoint"] = bench_checkpoint(preset(args.checkpoint_preset), Path(tmp))
    print(json.dumps(out, indent=2))
    if not args.json:
        s = out["step"]
        med = {k: v * 1e3 for k, v in s["median_step_s"].items()}
        print(
            f"step ({s['device']}, {args.threads} thread(s)): workbench {med['workbench']:.1f} ms, TransformerLens "
            f"eager {med['eager']:.1f} ms, plain SDPA {med['plain']:.1f} ms: workbench / plain "
            f"{s['workbench_over_plain']:.3f} (target <= 1.05), eager / plain {s['eager_over_plain']:.3f}"
        )
        if "loop" in out:
            lp = out["loop"]
            print(
                f"loop ({lp['steps']} steps): wall {lp['wall_s']:.1f} s, evaluations {lp['evaluation_s']:.1f} s, "
                f"checkpoints {lp['checkpoint_s']:.2f} s on the training thread ({lp['checkpoints']} checkpoints, "
                f"{lp['background_writer_s']:.2f} s in the background writer): checkpoint share "
                f"{lp['checkpoint_share']:.2%} (target <= 5%), projected to the full run "
                f"{lp['checkpoint_share_projected_full_run']:.2%}; {lp['tokens_per_s']:.0f} real tokens/s "
                f"({lp['tokens_per_s_steps_only']:.0f} without evaluations and checkpoints)"
                + (f"; MFU {lp['mfu']:.1%} ({lp['mfu_steps_only']:.1%} steps only)" if "mfu" in lp else "")
            )
        if "checkpoint" in out:
            c = out["checkpoint"]
            print(
                f"one {args.checkpoint_preset} checkpoint ({c['megabytes']:.0f} MB): previously "
                f"{c['previous_synchronous_s']:.2f} s on the training thread; now a "
                f"{c['training_thread_snapshot_s']:.2f} s "
                f"snapshot there and {c['background_writer_s']:.2f} s in the background writer"
            )
    return out


if __name__ == "__main__":
    main()
