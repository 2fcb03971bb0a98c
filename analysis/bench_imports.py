#!/usr/bin/env python3
"""Start-up time of the CLI and of `import workbench`: the working tree against a baseline revision.

What it measures
----------------
Wall time (fresh interpreter, end to end) of
    python3 -c "import workbench"
    python3 -m workbench --help
    python3 -m workbench data stats
for the current working tree (uncommitted edits included) and for a baseline git revision (default
79a61f0, the last commit before the import refactor; `--baseline REV`). Both sides run in the same
invocation, interleaved (each repeat runs every command on both sides, alternating which side goes
first), N repeats each (`-n`, default 5), after one untimed warm-up per command and side (the
extracted copy has no __pycache__ yet; the warm-up writes it). Prints median and min per side and
the ratios baseline / current (> 1: the working tree is faster).

How the baseline is isolated
----------------------------
The baseline is `git archive REV | tar -x -C TMPDIR`, and its commands run with cwd=TMPDIR and
PYTHONPATH=TMPDIR; the current side runs with cwd and PYTHONPATH set to the repository root. A
PYTHONPATH entry wins over the editable install: setuptools' editable finder is appended to the end
of sys.meta_path, after the path-based finder. This is checked before timing, not assumed: each side
prints `workbench.__file__` and `workbench.cli.__file__` once (shown in the output), and the script
stops with exit 1 if the baseline does not import from TMPDIR or the current side not from the
repository. Both sides share the same installed dependencies and installed metadata (so
`workbench.__version__` is the same on both sides); only the package source differs.

Usage:  python3 analysis/bench_imports.py [--baseline 79a61f0] [-n 5]
Takes 2 x (N + 1) x (the sum of the command times): about 2 minutes for N=5 against 79a61f0, whose
`import workbench` loads TransformerLens (~5 s a start). Wall-clock on a shared machine: a concurrent
job adds noise; the min is the steadier statistic for start-up time.
Exit 0 when every command ran (exit code 0) on both sides, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "import workbench": ["-c", "import workbench"],
    "-m workbench --help": ["-m", "workbench", "--help"],
    "-m workbench data stats": ["-m", "workbench", "data", "stats"],
}
WHERE = "import workbench, workbench.cli; print(workbench.__file__); print(workbench.cli.__file__)"


def extract(rev: str, dest: Path) -> str:
    """`git archive rev | tar -x -C dest`; returns the full commit id."""
    proc = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=ROOT, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"--baseline {rev!r}: not a commit of {ROOT}")
    commit = proc.stdout.strip()
    archive = subprocess.Popen(["git", "archive", commit], cwd=ROOT, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    archive.stdout.close()
    if archive.wait() != 0:
        raise SystemExit(f"git archive {commit} failed")
    return commit


def side_env(src: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(src)  # replaces any inherited PYTHONPATH: only this copy of workbench
    return env


def run(args: list[str], src: Path) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], cwd=src, env=side_env(src), capture_output=True, text=True)
    return time.perf_counter() - t0, proc


def check_source(name: str, src: Path) -> bool:
    _, proc = run(["-c", WHERE], src)
    files = proc.stdout.split()
    ok = (
        proc.returncode == 0 and len(files) == 2 and all(Path(f).resolve().is_relative_to(src.resolve()) for f in files)
    )
    print(f"{name:>8}: imports {', '.join(files) or proc.stderr.strip()}  [{'ok' if ok else 'WRONG SOURCE'}]")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="79a61f0", help="git revision to compare against")
    ap.add_argument("-n", type=int, default=5, help="timed repeats per command and side")
    args = ap.parse_args()
    if args.n < 1:
        ap.error("-n must be >= 1")

    with tempfile.TemporaryDirectory(prefix="bench-imports-") as tmp:
        base_dir = Path(tmp)
        commit = extract(args.baseline, base_dir)
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--", "workbench"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip()
        )
        print(f"baseline: {args.baseline} ({commit[:10]}), extracted to {base_dir}")
        print(f" current: working tree {ROOT} (HEAD {head}{', workbench/ modified' if dirty else ''})")
        print(f"python {sys.executable} {sys.version.split()[0]}, {args.n} repeats, interleaved\n")
        sides = {"baseline": base_dir, "current": ROOT}
        if not all([check_source(name, src) for name, src in sides.items()]):
            print("a side does not import its own copy of workbench; not timing", file=sys.stderr)
            return 1
        print()

        times: dict[tuple[str, str], list[float]] = {(c, s): [] for c in COMMANDS for s in sides}
        failed: list[str] = []
        for rep in range(-1, args.n):  # rep -1: warm-up, untimed
            order = list(sides) if rep % 2 == 0 else list(reversed(sides))
            for cmd, cmd_args in COMMANDS.items():
                for side in order:
                    dt, proc = run(cmd_args, sides[side])
                    if proc.returncode != 0:
                        last = (proc.stderr.strip().splitlines() or [""])[-1]
                        failed.append(f"{side}: python3 {' '.join(cmd_args)} exited {proc.returncode}: {last}")
                    if rep >= 0:
                        times[(cmd, side)].append(dt)

    header = (
        f"{'python3 ...':<26}{'baseline median':>16}{'min':>8}{'current median':>16}{'min':>8}"
        f"{'ratio median':>14}{'ratio min':>11}"
    )
    print(header)
    print("-" * len(header))
    for cmd in COMMANDS:
        b, c = times[(cmd, "baseline")], times[(cmd, "current")]
        bm, bn, cm, cn = statistics.median(b), min(b), statistics.median(c), min(c)
        print(f"{cmd:<26}{bm:>15.3f}s{bn:>7.3f}s{cm:>15.3f}s{cn:>7.3f}s{bm / cm:>13.2f}x{bn / cn:>10.2f}x")
    print("\nratio = baseline / current (> 1: the working tree starts faster)")
    if failed:
        print("\nfailed runs:\n  " + "\n  ".join(dict.fromkeys(failed)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
