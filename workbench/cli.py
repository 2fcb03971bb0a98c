"""`workbench ...` subcommands: thin wrappers over the public API.

Imports stay cheap (`--help` loads neither torch nor TransformerLens): each command imports what it
needs when it runs. Every failure of an input, a path or a run directory is one line on stderr,
exit code 2, before any compute; an option that a mode would ignore is refused. A run stopped by
Ctrl-C or SIGTERM saves its state, prints the resume command and exits 128 + the signal number.
`workbench --debug COMMAND ...` or WORKBENCH_DEBUG=1 prints the traceback before the one line. Other
exceptions (bugs, not bad input) are not caught: Python prints their traceback, exit code 1.
"""

from __future__ import annotations

import argparse
import errno
import json
import re
import sys
from pathlib import Path

from workbench.config import PRESETS, preset
from workbench.naming import default_run_path

DEFAULT_PRESET = "cpu-quick"
RUN_FLAGS = ("preset", "seed", "n_individuals", "steps", "lr", "batch_size", "device", "set")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and defaults shown in every help line."""

    def __init__(self, *args, **kw):
        kw.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kw)

    def error(self, message: str):
        self.exit(2, f"workbench: error: {message} (see `{self.prog} --help`)\n")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action):  # no "(default: None)" noise for unset options
        if action.default in (None, False, argparse.SUPPRESS) or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _given(args, flags) -> list[str]:
    """The flags of `flags` the user gave (options default to None / False / [])."""
    return [f for f in flags if getattr(args, f, None) not in (None, False, [])]


def _refuse(args, flags, reason: str) -> None:
    given = _given(args, flags)
    if given:
        names = ", ".join("--" + f.replace("_", "-") for f in given)
        raise ValueError(f"{names} cannot be used {reason}")


def _run_config(args, base=None):
    """The preset (or `base`) with the flags the user gave applied, validated."""
    from workbench.config import override

    cfg = base if base is not None else preset(getattr(args, "preset", None) or DEFAULT_PRESET)
    sets = [
        f"{path}={getattr(args, flag)}"
        for flag, path in (
            ("n_individuals", "data.n_individuals"),
            ("steps", "train.steps"),
            ("lr", "train.lr"),
            ("batch_size", "train.batch_size"),
            ("device", "train.device"),
            ("seed", "seed"),
        )
        if getattr(args, flag, None) is not None
    ]
    return override(cfg, [*sets, *(getattr(args, "set", None) or [])])


def _add_run_args(p: argparse.ArgumentParser, training: bool = True) -> None:
    p.add_argument("--preset", choices=PRESETS, help=f"the config to start from (default: {DEFAULT_PRESET})")
    p.add_argument(
        "--seed", type=int, help="seed of population, tokenizer, initial weights and batches (default: the preset's, 0)"
    )
    p.add_argument("--n-individuals", type=int, metavar="N", help="seen individuals (data.n_individuals)")
    p.add_argument("--batch-size", type=int, metavar="B", help="biographies per step (train.batch_size)")
    if training:
        p.add_argument(
            "--steps",
            type=int,
            help="optimizer steps (train.steps); checkpoints follow it. With --resume: "
            "extend a constant-lr run to this many steps, exactly",
        )
        p.add_argument("--lr", type=float, help="peak learning rate (train.lr)")
        p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="train.device (default: auto)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override any config field, e.g. --set data.sampler.kind=power_law --set train.lr=1e-3 "
        "(repeatable; validated like the rest)",
    )


def _run_at(spec: str, flag: str) -> tuple[str, int]:
    run, _, step = spec.rpartition("@")
    if not run or not re.fullmatch(r"[0-9]+", step):  # not str.isdigit: it accepts "²" and other digits
        raise ValueError(
            f"{flag}={spec!r}: allowed RUN@STEP, STEP a whole number in ASCII digits 0-9, "
            f"e.g. checkpoints/cpu-quick-seed0@3500"
        )
    return run, int(step)


def _check_window(run_path: str, window: list[int]) -> None:
    """--window START END within the run's trained steps, before any compute."""
    from workbench.attribution.window import check_window
    from workbench.run import load_run
    from workbench.training.rundir import RunDir

    check_window(load_run(RunDir.require(run_path, "run").path), *window, f"--window {window[0]} {window[1]}")


def _check_file_out(path: str, flag: str) -> Path:
    """An output file path: its folder must exist and be a folder, the path must not be a folder."""
    p = Path(path)
    if not path.strip():
        raise ValueError(f"{flag}={path!r}: allowed a file path, not an empty string")
    if p.is_dir():
        raise ValueError(f"{flag}={path!r} is a directory: allowed a file path")
    if not p.parent.is_dir():
        what = "does not exist" if not p.parent.exists() else "is not a directory"
        raise ValueError(f"{flag}={path!r}: its folder {p.parent} {what}")
    return p


def summary_line(path) -> str:
    """One line after a run: where it is, its status, the plateau and the final knowledge."""
    from workbench.run import load_run

    run = load_run(path)
    m = run.metrics
    if m.empty or "attribute_accuracy" not in m:
        return f"run {run.path}: {run.status}, no evaluation yet"
    last = m.iloc[-1]
    plateau = run.phases().describe()
    return (
        f"run {run.path}: {run.status} at step {int(last['step'])}; {plateau}; final attribute accuracy "
        f"{last['attribute_accuracy']:.3f}, loss {last['attribute_loss']:.3f} "
        f"(no-knowledge baseline {last['no_knowledge_baseline']:.3f})"
    )


# -- commands ------------------------------------------------------------------------------------


def cmd_data_stats(args) -> None:
    from workbench.data.biography_data import BiographyData

    print(json.dumps(BiographyData(_run_config(args)).stats(), indent=2))


def cmd_data_sample(args) -> None:
    if args.n < 1:
        raise ValueError(f"-n={args.n} is out of range: allowed >= 1")
    cfg = _run_config(args)
    import numpy as np

    from workbench.data.biography_data import BiographyData

    data = BiographyData(cfg)
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
    from workbench import experiment

    if args.resume is not None:
        _refuse(
            args,
            tuple(f for f in (*RUN_FLAGS, "out", "patch_from", "patch_start") if f != "steps"),
            "with --resume (a resumed run keeps its config.json; --steps extends a constant-lr run)",
        )
        run = experiment.resume(args.resume, progress=not args.quiet, steps=args.steps)
    else:
        if args.patch_start is not None and args.patch_from is None:
            raise ValueError("--patch-start cannot be used without --patch-from RUN@STEP")
        cfg = _twin_config(args) if args.patch_from else _run_config(args)
        out = args.out if args.out is not None else default_run_path(cfg)
        run = experiment.train(cfg, out, progress=not args.quiet)
    print(summary_line(run.path))


def _twin_config(args):
    """The study's twin model: the reference run's config and seed, the flags given on top, the patch spec."""
    from workbench.patching.grid import twin_config
    from workbench.training.rundir import RunDir

    _refuse(
        args,
        ("preset",),
        "with --patch-from (the twin model takes the reference run's config; change fields with --set)",
    )
    ref, step = _run_at(args.patch_from, "--patch-from")
    reference = RunDir.require(ref, "--patch-from").config()
    return twin_config(
        ref, reference, step, args.patch_start or 0, _run_config(args, base=reference.replace(patch=None))
    )


def cmd_finetune(args) -> None:
    from workbench import experiment

    base, step = _run_at(args.base, "RUN@STEP")
    kw = {k: v for k, v in (("steps", args.steps), ("lr", args.lr)) if v is not None}
    run = experiment.finetune(
        base, step, args.new_individuals, args.replay_weight, out=args.out, progress=not args.quiet, **kw
    )
    print(summary_line(run.path))


def cmd_patch_grid(args) -> None:
    from workbench import experiment
    from workbench.patching.grid import default_reference_steps
    from workbench.run import load_run

    steps = args.reference_steps or default_reference_steps(load_run(args.run))
    overrides = {"train": {"steps": args.steps}} if args.steps is not None else None
    df = experiment.patch_grid(
        args.run, steps, args.start_steps, out_root=args.out, config_overrides=overrides, progress=not args.quiet
    )
    print(df.to_string(index=False))


def cmd_sweep(args) -> int:
    from workbench import experiment
    from workbench.sweeps import load_spec, shipped_specs, status_table, sweep_cost

    if args.list:
        print("\n".join(shipped_specs()))
        return 0
    if not args.spec:
        raise ValueError("SPEC is missing: allowed a TOML file or a shipped spec (see `workbench sweep --list`)")
    if args.plan:
        _refuse(args, ("address", "retry_failed"), "with --plan (it trains nothing)")
        planned = experiment.plan_sweep(args.spec)
        table = status_table(planned.root, planned.trials)
        print(f"sweep {planned.spec.name}: {len(planned.trials)} trials under {planned.root}")
        print(table.to_string(index=False))
        print(sweep_cost(table, planned.spec.resources))
        return 0
    df = experiment.sweep(args.spec, address=args.address, retry_failed=args.retry_failed, progress=not args.quiet)
    print(df.drop(columns=["run"]).to_string(index=False))
    print(sweep_cost(df, load_spec(args.spec).resources))  # the spec the sweep planned, read again (no replanning)
    failed = df[df["status"] != "finished"]
    if len(failed):
        print(
            f"workbench: {len(failed)} of {len(df)} trials did not finish "
            f"({', '.join(sorted(set(failed['status'])))}); "
            "rerun to resume interrupted ones, with --retry-failed to retry failed ones",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_attribute(args) -> None:
    from workbench import experiment

    start, end = args.window if args.window else (None, None)
    if args.window:
        _check_window(args.run, args.window)
    given = {
        "layer": args.layer,
        "head": args.head,
        "start": start,
        "end": end,
        "step": args.step,
        "measure": args.measure,
        "fit_size": args.fit_size,
        "estimator": args.estimator,
        "scoring": args.scoring,
    }
    a = experiment.attribute(args.run, progress=not args.quiet, **{k: v for k, v in given.items() if v is not None})
    c = a.config
    print(
        f"attribution: {a.path}\nhead L{c.layer}H{c.head}, measure {c.measure} "
        f"{'at step ' + str(c.step) if c.scoring == 'checkpoint' else 'along the trajectory'} ({c.estimator}), window "
        f"[{c.start}, {c.end}): {a.meta['n_sequences']} sequences in {a.meta['seconds']['total']:.0f} s "
        f"(influence > 0 promotes the head)"
    )
    for by in ("individual", "attribute"):
        print(f"\nby {by} (top 5):\n{a.aggregate(by).head(5).to_string(index=False)}")


def cmd_retrieve(args) -> None:
    from workbench import experiment

    given = {"m": args.m, "votes": args.votes, "steps": args.steps, "source": args.source, "name": args.name}
    r = experiment.retrieve(args.run, progress=not args.quiet, **{k: v for k, v in given.items() if v is not None})
    print(
        f"retrieval: {r.path}\ndatastore: {r.meta['datastore']['documents']} documents, recall@1 by name "
        f"{r.meta['datastore']['name_recall_at_1']:.3f}"
    )
    seen = r.summary[r.summary["group"] == "seen"].pivot(index="step", columns="mode", values="accuracy")
    print(f"\nseen accuracy by mode:\n{seen.round(3).to_string()}")
    mult = r.multipliers[r.multipliers["mode"] != "none"].pivot(index="step", columns="mode", values="multiplier")
    print(
        "\nmultiplier (equivalent step / step; see multipliers.csv for intervals and bounds):\n"
        f"{mult.round(2).to_string()}"
    )
    if args.reading:
        from workbench.retrieval.reading import reading_test
        from workbench.run import load_run

        run = load_run(args.run)
        size = r.config.eval_size or run.config.train.eval_size
        table = reading_test(run, steps=r.config.steps, size=size, progress=not args.quiet)
        acc = table.pivot(index="step", columns="condition", values="accuracy")[table["condition"].unique()]
        print(
            f"\nreading tests, held-out accuracy (own: their biography in context; other: someone else's):\n"
            f"{acc.round(3).to_string()}"
        )


def cmd_runs(args) -> None:
    from workbench.run import list_runs

    root = Path(args.root)
    if not root.is_dir():
        raise ValueError(f"--root={args.root!r} {'is not a directory' if root.exists() else 'does not exist'}")
    df = list_runs(root)
    if args.json:
        print(df.to_json(orient="records", indent=2))
    else:  # the error column only when a run is broken
        df = df if df["error"].astype(bool).any() else df.drop(columns="error")
        print(df.to_string(index=False) if len(df) else f"no runs under {args.root}")


def cmd_main(args) -> None:
    """The main job: train the cpu-quick reference run (or reuse / resume it) and write its report."""
    from workbench import experiment
    from workbench.viz.report import write_report

    run = experiment.train_or_resume(preset(args.preset), args.out, keep_config=True)
    last = run.metrics.iloc[-1]
    print(
        json.dumps(
            {
                "run": str(run.path),
                "plateau": run.phases().to_dict(),
                "final_attribute_accuracy": last["attribute_accuracy"],
                "final_attribute_loss": last["attribute_loss"],
                "no_knowledge_baseline": last["no_knowledge_baseline"],
                "wall_s": run.dir.manifest()["wall_s"],
            },
            indent=2,
            default=float,
        )
    )
    print(f"report: {write_report(run, strict=True)}")
    print(summary_line(run.path))


def cmd_report(args) -> None:
    from workbench.run import load_run
    from workbench.viz.report import write_report

    out = _check_file_out(args.out, "--out") if args.out is not None else None
    print(f"report: {write_report(load_run(args.run), out, strict=True)}")


def build_parser() -> argparse.ArgumentParser:
    from workbench import __version__

    parser = Parser(
        prog="workbench",
        description="Study how language models learn facts: synthetic biographies, "
        "small HookedTransformers, the three phases, patching, probes.",
    )
    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="full tracebacks instead of one-line errors (also WORKBENCH_DEBUG=1)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="inspect the synthetic biographies")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    p = data_sub.add_parser("stats", help="pool sizes, templates per attribute, no-knowledge baseline (JSON)")
    _add_run_args(p, training=False)
    p.set_defaults(func=cmd_data_stats)
    p = data_sub.add_parser("sample", help="print decoded example biographies, names and values marked")
    _add_run_args(p, training=False)
    p.add_argument("-n", type=int, default=3, help="number of biographies")
    p.set_defaults(func=cmd_data_sample)

    p = sub.add_parser("train", help="train a run (or --resume one)")
    _add_run_args(p)
    p.add_argument(
        "--out",
        help="run directory (default: checkpoints/<preset>-seed<seed>; with --patch-from "
        "<reference>-patch-ref<step>-start<start>)",
    )
    p.add_argument("--resume", metavar="RUN", help="continue a stopped or killed run exactly, from its resume point")
    p.add_argument(
        "--patch-from",
        metavar="RUN@STEP",
        help="train the reference run's twin (its config and seed) with attention patterns from its checkpoint at STEP",
    )
    p.add_argument("--patch-start", type=int, metavar="STEP", help="step at which patching starts (default: 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("finetune", help="fine-tune a checkpoint on new individuals, with optional replay")
    p.add_argument("base", metavar="RUN@STEP", help="the pre-trained checkpoint")
    p.add_argument("--new-individuals", type=int, required=True, metavar="K", help="new individuals to learn")
    p.add_argument(
        "--replay-weight",
        type=float,
        default=0.0,
        metavar="W",
        help="sampling weight of each pre-training individual vs 1 per new individual",
    )
    p.add_argument("--steps", type=int, help="fine-tuning steps (default: 10%% of the base run's)")
    p.add_argument("--lr", type=float, help="constant learning rate (default: 3e-5, the study's)")
    p.add_argument("--out", help="run directory (default: <base run>-ft<K>-replay<W>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("patch-grid", help="patched runs over reference steps (and start steps) of a run")
    p.add_argument("run", help="the reference run")
    p.add_argument(
        "--reference-steps",
        type=int,
        nargs="+",
        metavar="STEP",
        help="reference checkpoints (default: nearest to 0, 1/16, 1/8, 1/4, 1/2, 1 of the run)",
    )
    p.add_argument("--start-steps", type=int, nargs="+", default=[0], metavar="STEP", help="patching start steps")
    p.add_argument("--steps", type=int, help="training steps of each patched run (default: the reference's)")
    p.add_argument("--out", help="grid folder (default: <run>-patch-grid)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_patch_grid)

    p = sub.add_parser("sweep", help="train every point of a sweep spec on Ray (skip finished, resume interrupted)")
    p.add_argument("spec", nargs="?", help="a TOML spec file, or a shipped spec name (see --list)")
    p.add_argument(
        "--address", help="an existing Ray cluster (default: $RAY_ADDRESS, else a local Ray on this machine)"
    )
    p.add_argument("--retry-failed", action="store_true", help="also rerun the trials that failed before")
    p.add_argument("--plan", action="store_true", help="validate every point and print the trials; train nothing")
    p.add_argument("--list", action="store_true", help="list the shipped specs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("attribute", help="data attribution: which training sequences build a run's recall head")
    p.add_argument("run", help="a trained run")
    p.add_argument("--layer", type=int, help="the head's layer (default: the recall head the finder picks)")
    p.add_argument("--head", type=int, help="the head (with --layer)")
    p.add_argument("--window", type=int, nargs=2, metavar=("START", "END"), help="steps (default: the plateau)")
    p.add_argument("--step", type=int, help="checkpoint of the influence (default: the first at or after END)")
    p.add_argument(
        "--measure",
        choices=("attention", "logit"),
        help="what of the head the influence is on: attention (attribute -> name) | logit (direct logit); "
        "default: AttributionConfig's, attention",
    )
    p.add_argument(
        "--probe", dest="measure", choices=("attention", "logit"), default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )  # the deprecated name of --measure, kept so old commands work
    p.add_argument(
        "--fit-size",
        type=int,
        help="window sequences the Fisher is fitted on, at most the window's (default: min(4096, the window's))",
    )
    p.add_argument(
        "--estimator",
        choices=("exact", "ekfac"),
        help="exact (Woodbury; default) | ekfac (Kronecker-factored, for units too large for exact)",
    )
    p.add_argument(
        "--scoring",
        choices=("checkpoint", "trajectory"),
        help="checkpoint: all sequences at --step (default) | trajectory: each at its segment's checkpoint",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_attribute)

    p = sub.add_parser(
        "retrieve", help="retrieval over the pre-training biographies: accuracy and multiplier per checkpoint"
    )
    p.add_argument("run", help="a trained run (packed: data.packing.k > 1, so documents fit in the context)")
    p.add_argument("--m", type=int, help="BM25 / oracle documents before the query (default: RetrievalConfig's, 1)")
    p.add_argument(
        "--votes", type=int, help="self-consistency: one-document contexts voting (default: RetrievalConfig's, 3)"
    )
    p.add_argument("--steps", type=int, nargs="+", help="checkpoint steps (default: all)")
    p.add_argument(
        "--source",
        choices=("generated", "trained"),
        help="the datastore: fresh training-template biographies of seen individuals, or the trained ones "
        "(default: generated)",
    )
    p.add_argument("--name", help="the study's folder under <run>/retrieval/ (default: RetrievalConfig's, default)")
    p.add_argument(
        "--reading",
        action="store_true",
        help="also the reading tests: held-out individuals with [own], [other], [other, own], [own, other] "
        "biographies in context (workbench.retrieval.reading)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_retrieve)

    p = sub.add_parser("runs", help="list runs and their status")
    p.add_argument("--root", default="checkpoints", help="folder holding run directories")
    p.add_argument("--json", action="store_true", help="JSON records instead of a table")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("report", help="write a run's self-contained offline HTML report")
    p.add_argument("run", help="run directory")
    p.add_argument("--out", help="output file (default: <run>/report.html)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("main", help="train the cpu-quick reference run and write its report")
    p.add_argument("--preset", choices=PRESETS, default=DEFAULT_PRESET, help="the reference run's preset")
    p.add_argument("--out", help="run directory (default: checkpoints/<preset>-seed0)")
    p.set_defaults(func=cmd_main)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error already printed in one line
        return int(e.code or 0)
    from workbench import debug
    from workbench.training.stopping import Stopped

    with debug.forced(args.debug):
        try:
            rc = args.func(args) or 0
        except Stopped as e:
            print(f"workbench: stopped: {e}", file=sys.stderr)
            return 128 + e.signum
        except KeyboardInterrupt:
            print("workbench: interrupted", file=sys.stderr)
            return 130
        except ValueError as e:  # bad input: a message naming the field, flag or file
            return _error(e, str(e))
        except OSError as e:  # a path the checks above could not foresee (permissions, a full disk, ...)
            where = f"{e.filename}: " if e.filename else ""
            what = e.strerror or str(e)
            if e.errno == errno.ENOSPC:
                what = (
                    "no space left on device: free some space, then rerun (a run continues from its last "
                    "saved step with `workbench train --resume RUN`)"
                )
            return _error(e, f"{where}{what}")
    return rc


def _error(e: BaseException, message: str, code: int = 2) -> int:
    """One line on stderr (the full traceback first in debug mode: --debug or WORKBENCH_DEBUG=1)."""
    import traceback

    from workbench import debug

    lines = message.strip().splitlines() or [type(e).__name__]
    if debug.enabled():
        traceback.print_exception(e, file=sys.stderr)
    elif len(lines) > 1:
        lines[0] += " (rerun with --debug for the full message and traceback)"
    print(f"workbench: error: {lines[0]}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
