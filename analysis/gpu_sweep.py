"""Benchmark: a few concurrent trials of a preset on one GPU through the sweep engine (Ray), each a
fixed number of steps with one evaluation and one checkpoint interval, so the time is mostly training.

    python analysis/gpu_sweep.py [--preset paper] [--steps 200] [--trials 4] [--gpus-per-trial 0.25]
        [--cpus-per-trial 1] [--out DIR] [--peak-tflops 989] [--address RAY_ADDRESS]

Trials differ only in their seed. Prints per trial: wall time (manifest `wall_s`: training with its
evaluations and checkpoints, without data setup), tokens per step (padded positions the model computes,
batch_size x the batch's longest biography, and real non-pad tokens), tokens/s (real tokens), TFLOP/s and MFU;
then the aggregate over the sweep's wall time (Ray start and every trial's setup included).

FLOPs (`workbench.model.training_flops`, forward + backward, the PaLM appendix-B formula) per sequence of t real
tokens: 6 * N * t + 12 * n_layers * n_heads * d_head * t^2, N the matmul parameters (no embeddings, no biases);
padding is not counted (it is not useful work; issue 24 item 6). MFU is against --peak-tflops
(the whole chip's dense bf16 peak: a trial's MFU is its share of the shared chip). Without
a GPU (--gpus-per-trial 0, the default without CUDA) this is the CPU path: TFLOP/s is printed, MFU is not.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import time
from pathlib import Path

import torch

from workbench.config import ModelConfig
from workbench.data.biography_data import BiographyData
from workbench.experiment import sweep
from workbench.model import build_model, context_length, matmul_parameters, training_flops
from workbench.run import checkpoints_root
from workbench.training.rundir import RunDir

MAX_SAMPLED_BATCHES = 256  # tokens per step: the mean over at most this many of the trial's own batches


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--gpus-per-trial", type=float, default=None, help="default 1/trials with CUDA, else 0")
    ap.add_argument("--cpus-per-trial", type=float, default=1.0)
    ap.add_argument("--out", default=None, help="a fresh folder (default under <checkpoints>/sweeps/)")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU (H100/H200: 989)")
    ap.add_argument("--address", default=None, help="a Ray cluster (default $RAY_ADDRESS, else local)")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.trials < 1:
        ap.error("--steps and --trials: allowed integers >= 1")
    if args.gpus_per_trial is None:
        args.gpus_per_trial = 1.0 / args.trials if torch.cuda.is_available() else 0.0
    name = f"gpu-bench-{args.preset}-{args.steps}steps-{args.trials}x"
    if args.out is None:
        base = checkpoints_root() / "sweeps" / name
        args.out = next(
            str(p) for k in range(1, 10_000) if not (p := base if k == 1 else base.with_name(f"{name}-{k}")).exists()
        )
    out = Path(args.out).absolute()
    if out.exists() and any(out.iterdir()):
        ap.error(f"--out {args.out}: not empty; a benchmark needs fresh runs (finished trials would be skipped)")
    args.out, args.name = str(out), name
    return args


def bench_spec(args: argparse.Namespace) -> dict:
    """The sweep: the preset for `steps` steps, one evaluation interval, one checkpoint interval, one seed per trial."""
    return {
        "name": args.name,
        "preset": args.preset,
        "out": args.out,
        "set": {"train.steps": args.steps, "train.eval_every": args.steps, "train.n_checkpoints": 1},
        "grid": {"seed": list(range(args.trials))},
        "resources": {"cpus": args.cpus_per_trial, "gpus": args.gpus_per_trial},
    }


@functools.cache
def counting_model(model_config: ModelConfig, d_vocab: int, n_ctx: int):
    """The model a run builds, for counting its FLOPs (built once per shape, on CPU)."""
    return build_model(model_config, d_vocab, n_ctx, seed=0)


def trial_work(run: str) -> dict:
    """Per step of a finished run: padded and real tokens, and FLOPs (see the module docstring)."""
    rd = RunDir(run)
    config = rd.config()
    data = BiographyData(config, tokenizer=rd.tokenizer())
    model = counting_model(config.model, data.tokenizer.vocab_size, context_length(config.model, data.max_length))
    n_params, steps = matmul_parameters(model), config.train.steps
    sampled = range(0, steps, max(1, math.ceil(steps / MAX_SAMPLED_BATCHES)))
    padded = real = flops = 0.0
    for s in sampled:
        batch = data.train_batch(s)
        b, t = batch.tokens.shape
        padded, real = padded + b * t, real + float(batch.mask.sum())
        flops += training_flops(model, batch.mask.sum(1))
    n = len(sampled)
    return {"padded": padded / n, "real": real / n, "flops": flops / n, "n_params": n_params}


def main(argv=None) -> int:
    args = parse_args(argv)
    gpu = args.gpus_per_trial > 0
    print(
        f"{args.trials} trials of {args.preset} x {args.steps} steps, {args.gpus_per_trial:g} GPU and "
        f"{args.cpus_per_trial:g} CPU each, into {args.out}"
    )
    if gpu:
        chip = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device on this machine"
        print(f"GPU path: {chip}, MFU against {args.peak_tflops:g} TFLOP/s (dense bf16 peak)")
    else:
        print("CPU path (no GPU requested): tokens/s and TFLOP/s only; MFU against a GPU peak is not printed")
    t0 = time.perf_counter()
    try:  # the engine refuses resources the Ray cluster lacks (e.g. a GPU fraction on a CPU machine)
        table = sweep(bench_spec(args), address=args.address, progress=True)
    except ValueError as e:
        print(f"gpu_sweep: error: {e}", file=sys.stderr)
        return 2
    sweep_wall = time.perf_counter() - t0
    failed = table[table["status"] != "finished"]
    for row in failed.itertuples():
        print(f"trial {row.trial}: {row.status} {row.error}".rstrip())
    if len(failed):
        return 1
    peak = args.peak_tflops * 1e12
    mfu = lambda flop_s: f"{flop_s / peak:.2%}" if gpu else "n/a"  # noqa: E731
    header = (
        f"{'trial':<12} {'wall_s':>8} {'steps':>6} {'tok/step':>9} {'real/step':>9} {'tokens/s':>11} "
        f"{'TFLOP/s':>9} {'MFU':>7}"
    )
    print(header)
    total_tokens = total_flops = 0.0
    walls, n_params = [], []
    for row in table.itertuples():
        w, wall = trial_work(row.run), RunDir(row.run).manifest()["wall_s"]
        tokens, flops = w["real"] * row.steps, w["flops"] * row.steps  # real tokens: padding is not useful work
        total_tokens, total_flops = total_tokens + tokens, total_flops + flops
        walls.append(wall)
        n_params.append(w["n_params"])
        print(
            f"{row.trial:<12} {wall:>8.2f} {row.steps:>6} {w['padded']:>9.0f} {w['real']:>9.0f} "
            f"{tokens / wall:>11.1f} {flops / wall / 1e12:>9.4f} {mfu(flops / wall):>7}"
        )
    # what fits at once on this machine's GPUs (or, on the CPU path, the local Ray's CPUs)
    slots = (
        (torch.cuda.device_count() or 1) / args.gpus_per_trial if gpu else (os.cpu_count() or 1) / args.cpus_per_trial
    )
    print("matmul parameters per model:", " / ".join(f"{n:,}" for n in sorted(set(n_params))))
    print(
        f"aggregate: {len(table)} trials (at most {min(len(table), int(slots + 1e-9))} concurrent), "
        f"sweep wall {sweep_wall:.2f} s, "
        f"{total_tokens / sweep_wall:.1f} tokens/s total, {total_flops / sweep_wall / 1e12:.4f} TFLOP/s, "
        f"MFU {mfu(total_flops / sweep_wall)}, mean trial wall {sum(walls) / len(walls):.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
