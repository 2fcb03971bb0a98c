"""`workbench ...` subcommands: thin wrappers over the public API."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workbench.config import PRESETS, preset


def _run_config(args: argparse.Namespace):
    train, data = {}, {}
    if args.steps is not None:
        train["steps"] = args.steps
    if args.lr is not None:
        train["lr"] = args.lr
    if getattr(args, "batch_size", None) is not None:
        train["batch_size"] = args.batch_size
    if getattr(args, "device", None):
        train["device"] = args.device
    if args.n_individuals is not None:
        data["n_individuals"] = args.n_individuals
    cfg = preset(args.preset, train=train, data=data)
    return cfg if args.seed is None else cfg.replace(seed=args.seed)


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="cpu-quick", help=f"one of {', '.join(PRESETS)}")
    p.add_argument("--n-individuals", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--steps", type=int)
    p.add_argument("--lr", type=float)


def cmd_data_stats(args) -> None:
    from workbench.data.corpus import BiographyData

    print(json.dumps(BiographyData(_run_config(args)).stats(), indent=2))


def cmd_data_sample(args) -> None:
    import numpy as np

    from workbench.data.corpus import BiographyData

    if args.n < 1:
        raise ValueError(f"-n={args.n} is out of range: allowed >= 1")
    data = BiographyData(_run_config(args))
    if args.n <= data.config.train.batch_size:
        batch = data.train_batch(0)
    else:  # individuals of as many training steps as needed
        steps = range(-(-args.n // data.config.train.batch_size))
        ids = np.concatenate([data.sampler.individuals(s) for s in steps])[: args.n]
        batch = data.biographer.batch(ids, "training", np.random.default_rng(data.config.seed))
    print("names as [[...]], attribute values as <<...>>")
    for i in range(args.n):
        print(f"{i + 1}. {data.biographer.text(batch, i, mark=True).strip()}")


def cmd_train(args) -> None:
    from workbench.training.api import resume, train

    if args.resume:
        run = resume(args.resume, progress=not args.quiet)
    else:
        cfg = _run_config(args)
        if args.patch_from:
            cfg = _with_patch(cfg, args)
        out = args.out or f"checkpoints/{cfg.preset}-seed{cfg.seed}"
        run = train(cfg, out, progress=not args.quiet)
    print(f"run: {run.path}")


def _with_patch(cfg, args):
    from workbench.config import PatchConfig

    ref, _, step = args.patch_from.rpartition("@")
    if not ref or not step.isdigit():
        raise ValueError(f"--patch-from={args.patch_from!r}: allowed RUN@STEP, e.g. checkpoints/cpu-quick-seed0@1000")
    return cfg.replace(patch=PatchConfig(reference_run=str(Path(ref).absolute()), reference_step=int(step),
                                         start_step=args.patch_start))


def _run_at(spec: str, flag: str) -> tuple[str, int]:
    run, _, step = spec.rpartition("@")
    if not run or not step.isdigit():
        raise ValueError(f"{flag}={spec!r}: allowed RUN@STEP, e.g. checkpoints/cpu-quick-seed0@3500")
    return run, int(step)


def cmd_finetune(args) -> None:
    from workbench.finetune import finetune

    base, step = _run_at(args.base, "RUN@STEP")
    kw = {k: v for k, v in (("steps", args.steps), ("lr", args.lr)) if v is not None}
    run = finetune(base, step, args.new_individuals, args.replay_weight, out=args.out, progress=not args.quiet, **kw)
    print(f"run: {run.path}")


def cmd_patch_grid(args) -> None:
    from workbench.patching.grid import default_reference_steps, patch_grid
    from workbench.run import load_run

    steps = args.reference_steps or default_reference_steps(load_run(args.run))
    overrides = {"train": {"steps": args.steps}} if args.steps else None
    df = patch_grid(args.run, steps, args.start_steps, out_root=args.out, config_overrides=overrides,
                    progress=not args.quiet)
    print(df.to_string(index=False))


def cmd_runs(args) -> None:
    from workbench.run import list_runs

    df = list_runs(args.root)
    print(df.to_string(index=False) if len(df) else f"no runs under {args.root}")


def cmd_main(args) -> None:
    """The main job: train the cpu-quick reference run (or reuse it) and write its report."""
    from workbench.run import load_run
    from workbench.training.api import resume, train

    cfg = preset(args.preset)
    out = Path(args.out or f"checkpoints/{cfg.preset}-seed{cfg.seed}")
    run_dir = resume(out) if (out / "manifest.json").is_file() else train(cfg, out)
    run = load_run(run_dir.path)
    ph = run.phases()
    last = run.metrics.iloc[-1]
    print(json.dumps({"run": str(run.path), "plateau": ph.to_dict(), "final_attribute_accuracy": last["attribute_accuracy"],
                      "final_attribute_loss": last["attribute_loss"], "no_knowledge_baseline": last["no_knowledge_baseline"],
                      "wall_s": run.dir.manifest()["wall_s"]}, indent=2, default=float))
    from workbench.viz.report import write_report

    print(f"report: {write_report(run)}")


def cmd_report(args) -> None:
    from workbench.run import load_run
    from workbench.viz.report import write_report

    print(f"report: {write_report(load_run(args.run), args.out)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="inspect the synthetic biographies").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("stats", help="pool sizes, templates per attribute, no-knowledge baseline (JSON)")
    _add_run_args(p)
    p.set_defaults(func=cmd_data_stats)
    p = data.add_parser("sample", help="print decoded example biographies, names and values marked")
    _add_run_args(p)
    p.add_argument("-n", type=int, default=3)
    p.set_defaults(func=cmd_data_sample)

    p = sub.add_parser("train", help="train a run (or --resume one)")
    _add_run_args(p)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--out", help="run directory (default checkpoints/<preset>-seed<seed>)")
    p.add_argument("--resume", metavar="RUN", help="continue a stopped run from its last checkpoint")
    p.add_argument("--patch-from", metavar="RUN@STEP", help="replace attention patterns by a reference checkpoint's")
    p.add_argument("--patch-start", type=int, default=0, metavar="STEP", help="step at which patching starts")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("finetune", help="fine-tune a checkpoint on new individuals, with optional replay")
    p.add_argument("base", metavar="RUN@STEP")
    p.add_argument("--new-individuals", type=int, required=True, metavar="K")
    p.add_argument("--replay-weight", type=float, default=0.0, metavar="W")
    p.add_argument("--steps", type=int)
    p.add_argument("--lr", type=float, help="constant learning rate (default 3e-5)")
    p.add_argument("--out")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("patch-grid", help="patched runs over reference steps (and start steps) of a run")
    p.add_argument("run")
    p.add_argument("--reference-steps", type=int, nargs="+")
    p.add_argument("--start-steps", type=int, nargs="+", default=[0])
    p.add_argument("--steps", type=int, help="training steps of each patched run (default: the reference's)")
    p.add_argument("--out", help="grid folder (default <run>-patch-grid)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_patch_grid)

    p = sub.add_parser("runs", help="list runs and their status")
    p.add_argument("--root", default="checkpoints")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("report", help="write a run's self-contained offline HTML report")
    p.add_argument("run")
    p.add_argument("--out", help="output file (default <run>/report.html)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("main", help="train the cpu-quick reference run and write its report")
    p.add_argument("--preset", default="cpu-quick")
    p.add_argument("--out")
    p.set_defaults(func=cmd_main)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ValueError as e:
        print(f"workbench: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
