"""The device check (issue 24 item 7): what the GPU path does, in one call of a few minutes.

    python analysis/gpu_check.py [--out analysis/gpu_check.md] [--tiny] [--peak-tflops 989] [--loop-steps 300]

On a CUDA GPU:
1. the paper preset's real loop (`workbench.experiment.train`) for --loop-steps steps, with its evaluation cadence
   and the first steps of its checkpoint schedule: real (unpadded) tokens/s and MFU over the whole loop and
   without evaluations and checkpoints, peak GPU memory, checkpoint time (training thread and background writer);
2. one training step of the paper model, interleaved on the same batches: the SDPA path (the default), TransformerLens'
   eager attention, torch.compile, a plain PyTorch SDPA model of the same shape, and the attention-patched step
   (every layer, patterns from another initialisation);
3. Ray: one trial of a small preset alone on the GPU, then 4 concurrent trials sharing it (0.25 GPU each, each
   capped at a quarter of the memory): each concurrent trial's speed vs the solo one.
It prints one table and writes it, as markdown ready for analysis/NOTES.md, to --out (and the JSON next to it).

Without CUDA (or with --tiny) it runs a tiny version of itself on CPU (the tiny preset, a few steps, 2 trials of one
CPU each, no compile: refused on CPU), which is what the tests run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_train import Eager, PlainGPT, bench_loop, step_time  # scripts run from analysis/

from workbench.config import preset
from workbench.model import build_model
from workbench.training.loop import make_optimizer, pad_multiple, padded, resolve_precision
from workbench.training.session import setup


def scale(tiny: bool) -> dict:
    if tiny:
        return {"preset": "tiny", "loop_steps": 30, "step_steps": 5, "small": "tiny", "small_steps": 10, "trials": 2}
    return {
        "preset": "paper",
        "loop_steps": 300,
        "step_steps": 20,
        "small": "cpu-sweep",
        "small_steps": 300,
        "trials": 4,
    }


def bench_variants(cfg, steps: int) -> dict:
    """Median step time of each variant, interleaved on the same (padded, as in the loop) batches."""
    from workbench.patching.hooks import PatternPatcher
    from workbench.patching.sources import ReferencePatterns

    data, model, device = setup(cfg)
    dtype = resolve_precision(cfg.train, device)
    fresh = lambda: setup(cfg, tokenizer=data.tokenizer)[1]  # noqa: E731  the same initial weights
    models = {
        "sdpa": model,
        "eager": Eager(fresh()),
        "plain": PlainGPT(cfg.model, data.tokenizer.vocab_size, model.cfg.n_ctx).to(device),
    }
    if device == "cuda":
        models["compiled"] = torch.compile(fresh())
    patched = fresh()
    reference = build_model(cfg.model, data.tokenizer.vocab_size, model.cfg.n_ctx, cfg.seed + 1, device)
    PatternPatcher(patched, ReferencePatterns(reference)).install()
    models["patched"] = patched
    opts = {k: make_optimizer(m, cfg.train, device) for k, m in models.items()}
    multiple = pad_multiple(cfg.train, device)
    times: dict[str, list[float]] = {k: [] for k in models}
    warmup = 5 if device == "cuda" else 2  # compile happens in the first steps
    for s in range(steps + warmup):
        batch = padded(data.train_batch(s), multiple, model.cfg.n_ctx, data.tokenizer.pad_id).to(device)
        for name, m in models.items():
            t = step_time(m, opts[name], batch, dtype)
            if s >= warmup:
                times[name].append(t)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "median_step_ms": {k: v * 1e3 for k, v in med.items()},
        "eager_over_sdpa": med["eager"] / med["sdpa"],
        "sdpa_over_plain": med["sdpa"] / med["plain"],
        "patched_over_unpatched": med["patched"] / med["sdpa"],
        "compiled_over_sdpa": med["compiled"] / med["sdpa"] if "compiled" in med else None,
    }


def bench_ray(small: str, steps: int, trials: int, gpu: bool, root: Path) -> dict:
    """One trial alone, then `trials` concurrent ones sharing the machine: each one's steps/s vs the solo one's."""
    from workbench.experiment import sweep
    from workbench.sweeps.engine import ray_session
    from workbench.training.rundir import RunDir

    def spec(name: str, n: int, gpus: float) -> dict:
        return {
            "name": name,
            "preset": small,
            "out": str(root / name),
            "set": {"train.steps": steps, "train.eval_every": steps, "train.n_checkpoints": 1},
            "grid": {"seed": list(range(n))},
            "resources": {"cpus": 1, "gpus": gpus},
        }

    def speeds(table) -> list[float]:
        bad = table[table["status"] != "finished"]
        if len(bad):
            raise RuntimeError(f"trial {bad.iloc[0]['trial']}: {bad.iloc[0]['status']} {bad.iloc[0]['error']}")
        return [steps / RunDir(run).manifest()["wall_s"] for run in table["run"]]

    with ray_session(num_cpus=None if gpu else trials):
        solo = speeds(sweep(spec("solo", 1, 1.0 if gpu else 0), progress=False))[0]
        shared = speeds(sweep(spec("shared", trials, 1.0 / trials if gpu else 0), progress=False))
    return {
        "solo_steps_per_s": solo,
        "shared_steps_per_s": shared,
        "each_over_solo": [s / solo for s in shared],
        "aggregate_over_solo": sum(shared) / solo,
    }


def table(result: dict) -> str:
    """The markdown section for analysis/NOTES.md."""
    lp, st, ray = result["loop"], result["step"], result["ray"]
    ms = st["median_step_ms"]
    mfu = lambda k: f"{lp[k]:.1%}" if k in lp else "n/a (CPU)"  # noqa: E731
    rows = [
        (
            "loop: real tokens/s",
            f"{lp['tokens_per_s']:,.0f}",
            f"{lp['steps']} steps of {result['preset']}, evaluations and checkpoints included",
        ),
        (
            "loop: real tokens/s, steps only",
            f"{lp['tokens_per_s_steps_only']:,.0f}",
            "without evaluation and checkpoint time",
        ),
        (
            "loop: MFU (all / steps only)",
            f"{mfu('mfu')} / {mfu('mfu_steps_only')}",
            f"{lp['flop_per_step'] / 1e12:.3f} TFLOP/step (real tokens, {lp['matmul_parameters']:,} matmul parameters),"
            f" peak {result['peak_tflops']:g} TFLOP/s",
        ),
        (
            "loop: peak GPU memory",
            f"{result['peak_memory_gib']:.2f} GiB" if result["peak_memory_gib"] is not None else "n/a (CPU)",
            "torch.cuda.max_memory_allocated",
        ),
        (
            "loop: checkpoints",
            f"{lp['checkpoint_s'] / lp['checkpoints'] * 1e3:.0f} ms each on the training thread",
            f"{lp['checkpoints']} checkpoints, {lp['background_writer_s']:.2f} s in the background writer, "
            f"{lp['checkpoint_share']:.1%} of the loop's wall time",
        ),
        ("loop: evaluations", f"{lp['evaluation_s']:.2f} s", f"{lp['wall_s']:.1f} s wall in all"),
        (
            "step: SDPA / eager / compiled / plain",
            " / ".join(f"{ms[k]:.1f}" if k in ms else "n/a" for k in ("sdpa", "eager", "compiled", "plain")) + " ms",
            f"eager/SDPA {st['eager_over_sdpa']:.2f}, SDPA/plain {st['sdpa_over_plain']:.2f}"
            + (
                f", compiled/SDPA {st['compiled_over_sdpa']:.2f}"
                if st["compiled_over_sdpa"]
                else ", compile refused on CPU"
            ),
        ),
        (
            "step: patched / unpatched",
            f"{st['patched_over_unpatched']:.2f}x",
            f"{ms['patched']:.1f} ms vs {ms['sdpa']:.1f} ms, every layer patched",
        ),
        (
            f"Ray: {len(ray['shared_steps_per_s'])} concurrent trials, each vs solo",
            ", ".join(f"{x:.2f}" for x in ray["each_over_solo"]),
            f"{result['small']}, solo {ray['solo_steps_per_s']:.1f} steps/s, "
            f"aggregate {ray['aggregate_over_solo']:.2f}x solo",
        ),
    ]
    head = (
        f"## Device check ({result['date']}, {result['device_name']}, torch {torch.__version__}; "
        f"`python analysis/gpu_check.py`{' --tiny' if result['tiny'] else ''})\n\n"
    )
    body = "| measure | value | notes |\n|---|---|---|\n" + "".join(f"| {a} | {b} | {c} |\n" for a, b, c in rows)
    return head + body


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="analysis/gpu_check.md", help="the markdown table (and .json next to it)")
    ap.add_argument("--tiny", action="store_true", help="the tiny CPU version (the default without CUDA)")
    ap.add_argument("--loop-steps", type=int, default=None)
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU (H100/H200: 989)")
    ap.add_argument("--skip-ray", action="store_true", help="leave out the Ray trials")
    args = ap.parse_args(argv)
    gpu = torch.cuda.is_available() and not args.tiny
    sc = scale(not gpu)
    if args.loop_steps:
        sc["loop_steps"] = args.loop_steps
    if not gpu:
        torch.set_num_threads(1)
    cfg = preset(sc["preset"])
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "tiny": not gpu,
        "preset": sc["preset"],
        "small": sc["small"],
        "device_name": torch.cuda.get_device_name(0) if gpu else f"CPU ({os.cpu_count()} cores)",
        "peak_tflops": args.peak_tflops,
    }
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        if gpu:
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        result["loop"] = bench_loop(cfg, sc["loop_steps"], args.peak_tflops, Path(tmp))
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30 if gpu else None
        print(f"loop: {time.perf_counter() - t:.0f} s", file=sys.stderr)
        t = time.perf_counter()
        result["step"] = bench_variants(cfg, sc["step_steps"])
        print(f"step variants: {time.perf_counter() - t:.0f} s", file=sys.stderr)
        if gpu:
            torch.cuda.empty_cache()
        t = time.perf_counter()
        result["ray"] = (
            {
                "solo_steps_per_s": float("nan"),
                "shared_steps_per_s": [],
                "each_over_solo": [],
                "aggregate_over_solo": float("nan"),
            }
            if args.skip_ray
            else bench_ray(sc["small"], sc["small_steps"], sc["trials"], gpu, Path(tmp) / "ray")
        )
        print(f"ray: {time.perf_counter() - t:.0f} s", file=sys.stderr)
    md = table(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(md)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
