"""Benchmark: the cost of attributing one plateau window at cpu-quick scale, against training through it.

    python analysis/attribution_benchmark.py [--run RUN] [--start 250] [--end 700] [--fit-size 4096]
        [--measure attention] [--estimator exact] [--threads 2]

Without --run: the cpu-quick model at initialisation (the cost does not depend on the weights) and the
cpu-quick reference run's plateau window, steps 250-700 (analysis/NOTES.md): 450 steps x 32 = 14,400
sequences. With --run: that run's checkpoint at --end (or the first after it) and the same window.

Times, in one process: the baseline, training the window's steps (forward, backward and AdamW on the same
batches; measured over 30 steps and scaled to the window), and the attribution's parts: the window's
batches, the influence (exact: the Fisher from --fit-size per-sequence gradients, solved through the Woodbury
identity; or EK-FAC's factors fitted on as many) with the scores of every sequence, and the per-sequence table.
Prints each with its ratio to the baseline, the exact estimator's memory, and whether the total is under the
5-minute target.
"""

from __future__ import annotations

import argparse
import time

import torch

from workbench.attribution.influence import INFLUENCES, exact_memory
from workbench.attribution.measures import MEASURES
from workbench.attribution.shim import HeadView
from workbench.attribution.window import sequence_table, window_batch
from workbench.config import preset
from workbench.data.biography_data import BiographyData
from workbench.metrics import next_token_loss
from workbench.model import build_model, context_length
from workbench.training.loop import make_optimizer

TARGET_S = 5 * 60


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="a trained cpu-quick run (default: the model at initialisation)")
    p.add_argument("--start", type=int, default=250)
    p.add_argument("--end", type=int, default=700)
    p.add_argument("--fit-size", type=int, default=4096)
    p.add_argument("--measure", choices=sorted(MEASURES), default="attention")
    p.add_argument("--estimator", choices=sorted(INFLUENCES), default="exact")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    if args.run:
        import workbench as wb

        run = wb.load_run(args.run)
        config, data = run.config, run.data
        model = run.load_model(next(s for s in run.checkpoint_steps if s >= args.end))
    else:
        config = preset("cpu-quick")
        data = BiographyData(config)
        model = build_model(
            config.model, data.tokenizer.vocab_size, context_length(config.model, data.max_length), config.seed
        ).eval()
    layer, head = config.model.n_layers - 1, 0
    n_steps = args.end - args.start
    print(
        f"cpu-quick window [{args.start}, {args.end}): {n_steps * config.train.batch_size} sequences, head "
        f"L{layer}H{head}, measure {args.measure}, {args.estimator} fitted on {args.fit_size}, {args.threads} threads"
    )
    measure = MEASURES[args.measure]()

    baseline = training_seconds(model, data, config, args.start, min(30, n_steps)) * n_steps / min(30, n_steps)
    t0 = time.perf_counter()
    train = window_batch(data, args.start, args.end)
    measure_batch = data.eval_batch("seen", 256, seed_offset=1)
    t1 = time.perf_counter()
    view = HeadView(model, layer, head)
    influence, per_token = INFLUENCES[args.estimator](
        view, measure, train, measure_batch, fit_size=args.fit_size, per_token=True, progress=True
    )
    t2 = time.perf_counter()
    sequence_table(data, args.start, args.end, args.end, train, influence, per_token)
    t3 = time.perf_counter()
    total = t3 - t0
    rows = [
        ("baseline: training through the window", baseline),
        ("window batches", t1 - t0),
        (f"{args.estimator} influence of every sequence", t2 - t1),
        ("per-sequence table", t3 - t2),
        ("attribution total", total),
    ]
    for name, s in rows:
        print(f"{name:40s} {s:8.1f} s   {s / baseline:6.2f} x baseline")
    if args.estimator == "exact":
        memory = exact_memory(view, measure.modules, min(args.fit_size, len(train)))
        print(f"exact influence memory (gradients and Woodbury system, float64): {memory / 2**30:.2f} GiB")
    print(
        f"attribution of one plateau window: {total / 60:.1f} min "
        f"({'under' if total < TARGET_S else 'OVER'} the {TARGET_S // 60} min target)"
    )


def training_seconds(model, data, config, start: int, n: int) -> float:
    """Seconds for `n` training steps from `start` on a copy of the model (the baseline)."""
    import copy

    m = copy.deepcopy(model).train()
    opt = make_optimizer(m, config.train)
    t = time.perf_counter()
    for step in range(start, start + n):
        batch = data.train_batch(step)
        loss = next_token_loss(m(batch.tokens), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
