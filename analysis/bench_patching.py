"""Benchmark: an unpatched training step vs an attention-patched one (every layer, patterns from a
reference checkpoint), same model config, batch size and batches, measured in one run (interleaved).

    python analysis/bench_patching.py [--preset cpu-quick] [--steps 20] [--threads 2] [--reference RUN@STEP]

The patched step adds the reference's forward pass (no grad, up to the last patched layer) to every
step. Without --reference, the reference is another initialisation of the same architecture (a
checkpoint's values do not change the cost). Prints median step times and their ratio (target <= 1.4x).
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch
from bench_train import step_time  # the same timed training step (scripts run from analysis/)

from workbench.config import preset
from workbench.model import build_model
from workbench.patching.hooks import PatternPatcher
from workbench.patching.sources import ReferencePatterns
from workbench.training.loop import make_optimizer, resolve_precision
from workbench.training.session import setup


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="cpu-quick")
    ap.add_argument("--steps", type=int, default=20, help="measured steps per variant (after 3 warm-up steps)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reference", metavar="RUN@STEP", help="a real reference checkpoint (same architecture)")
    args = ap.parse_args()
    if args.steps < 10:
        raise SystemExit(f"--steps={args.steps}: allowed >= 10 (the median needs enough samples)")
    torch.set_num_threads(args.threads)
    cfg = preset(args.preset)
    data, plain, device = setup(cfg)
    _, patched, _ = setup(cfg, tokenizer=data.tokenizer)  # the same initial weights
    if args.reference:
        from workbench.run import load_run

        run, _, step = args.reference.rpartition("@")
        reference = load_run(run).load_model(int(step), device)
    else:
        reference = build_model(cfg.model, data.tokenizer.vocab_size, plain.cfg.n_ctx, cfg.seed + 1, device)
    PatternPatcher(patched, ReferencePatterns(reference)).install()  # every layer, every head, mix 1
    models = {"unpatched": plain, "patched": patched}
    opts = {k: make_optimizer(m, cfg.train) for k, m in models.items()}
    dtype = resolve_precision(cfg.train, device)  # the run's autocast precision (None: fp32)
    times = {k: [] for k in models}
    warmup = 3
    for s in range(args.steps + warmup):
        batch = data.train_batch(s).to(device)
        for name, m in models.items():  # interleaved: both variants see the same machine load
            t = step_time(m, opts[name], batch, dtype)
            if s >= warmup:
                times[name].append(t)
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "preset": args.preset,
        "device": device,
        "threads": torch.get_num_threads(),
        "batch": list(batch.tokens.shape),
        "model": cfg.model.__dict__,
        "steps_measured": args.steps,
        "reference": args.reference or f"fresh init (seed {cfg.seed + 1})",
        "median_step_ms": {k: v * 1e3 for k, v in med.items()},
        "ratio_patched_over_unpatched": med["patched"] / med["unpatched"],
        "target_ratio": 1.4,
    }
    print(json.dumps(out, indent=2))
    print(
        f"unpatched step {med['unpatched'] * 1e3:.1f} ms vs patched step {med['patched'] * 1e3:.1f} ms: "
        f"ratio {out['ratio_patched_over_unpatched']:.2f}x (target <= 1.4x)"
    )


if __name__ == "__main__":
    main()
