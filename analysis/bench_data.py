#!/usr/bin/env python3
"""Benchmark the synthetic-biography data pipeline against its targets.

What it measures
----------------
(b) build: seconds to build the default population (64k training + 16k held-out individuals, the
    default `DataConfig`) and train its tokenizer, i.e. `BiographyData(RunConfig())`, versus a
    10 s target. Measured first, from a cold start (pools and imports already loaded).
(a) throughput: training biographies per second from `BiographyData.train_batch(step)` with the
    default batch of 128, on ONE core (`torch.set_num_threads(1)`, BLAS/OpenMP threads 1), over at
    least `--seconds` seconds of consecutive steps, versus a 20,000 biographies/s target.
(c) sizes: the tokenizer's vocabulary size, and the mean and maximum biography length in tokens
    (BOS included) over every biography built in (a), next to the upper bound `max_length`.

Usage:  python analysis/bench_data.py [--seconds 2.5]
Prints readable lines, then one JSON object (last line). Takes about 10-30 s.
The numbers are wall-clock on a shared machine: a concurrent job lowers them.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from workbench.config import RunConfig  # noqa: E402
from workbench.data.biography_data import BiographyData  # noqa: E402
from workbench.data.pools import Pools  # noqa: E402

THROUGHPUT_TARGET = 20_000  # biographies / s on one core
BUILD_TARGET_S = 10.0


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=2.5, help="minimum measuring time for (a), >= 2")
    args = ap.parse_args()
    torch.set_num_threads(1)

    cfg = RunConfig()
    d = cfg.data
    Pools.from_sizes(d.pool_sizes)  # read the pool files once, outside the timed region

    # (b) build population + tokenizer
    t0 = time.perf_counter()
    data = BiographyData(cfg)
    build_s = time.perf_counter() - t0

    # (a) throughput of train_batch on one core
    batch_size = cfg.train.batch_size
    data.train_batch(0)  # warm the segment caches
    lengths: list[torch.Tensor] = []
    step, t0 = 1, time.perf_counter()
    while True:
        b = data.train_batch(step)
        lengths.append(b.mask.sum(1))
        step += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= max(args.seconds, 2.0):
            break
    n_batches = step - 1
    bios_per_s = n_batches * batch_size / elapsed

    # (c) vocabulary and lengths
    all_len = torch.cat(lengths).float()
    result = {
        "throughput": {
            "biographies_per_s": bios_per_s,
            "target_per_s": THROUGHPUT_TARGET,
            "ratio_to_target": bios_per_s / THROUGHPUT_TARGET,
            "batch_size": batch_size,
            "batches": n_batches,
            "seconds": elapsed,
            "torch_threads": torch.get_num_threads(),
        },
        "build": {
            "seconds": build_s,
            "target_s": BUILD_TARGET_S,
            "ratio_to_target": build_s / BUILD_TARGET_S,
            "n_individuals": d.n_individuals,
            "n_heldout": d.n_heldout,
            "vocab_size_config": d.vocab_size,
        },
        "sizes": {
            "vocab_size": data.tokenizer.vocab_size,
            "mean_biography_tokens": float(all_len.mean()),
            "max_biography_tokens_observed": int(all_len.max()),
            "max_biography_tokens_bound": data.max_length,
            "biographies_measured": int(all_len.numel()),
        },
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpus": os.cpu_count(),
            "load_avg_1min": os.getloadavg()[0],
        },
    }

    t, bld, s = result["throughput"], result["build"], result["sizes"]
    print(
        f"(a) train_batch, batch {batch_size}, 1 thread: {t['biographies_per_s']:,.0f} biographies/s "
        f"over {t['seconds']:.2f} s ({n_batches} batches) = {t['ratio_to_target']:.2f} x the "
        f"{THROUGHPUT_TARGET:,}/s target"
    )
    print(
        f"(b) BiographyData(RunConfig()) [{d.n_individuals:,} + {d.n_heldout:,} held-out + tokenizer]: "
        f"{bld['seconds']:.2f} s vs {BUILD_TARGET_S:.0f} s target ({bld['ratio_to_target']:.2f} x)"
    )
    print(
        f"(c) vocab {s['vocab_size']}, biography length mean {s['mean_biography_tokens']:.1f} tokens, "
        f"max observed {s['max_biography_tokens_observed']} (bound {s['max_biography_tokens_bound']}) "
        f"over {s['biographies_measured']:,} biographies"
    )
    print(f"    load average (1 min) {result['machine']['load_avg_1min']:.2f} on {os.cpu_count()} CPUs")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
