"""Does patching from a post-plateau reference halve the steps to 50% attribute accuracy? (docs/method.md §4.3)

For an unpatched run RUN (trained here first when absent, from --preset/--seed/--set), retrain its
own config (same schedule, same initial weights) with every layer's attention pattern (or --layers)
replaced by the pattern of RUN's final checkpoint from step 0. The patched run stops once it is past
50% accuracy or past the unpatched crossing, whichever comes first. Prints one Markdown table row:
the plateau of each run (workbench.phases: reaches, then leaves the no-knowledge baseline), both
50% crossings as intervals between evaluations, and the range of their ratio (patched / unpatched).

Columns: | config | seed | patched layers | plateau | patched plateau | unpatched 50% | patched 50% | ratio |

    python analysis/patching_speedup.py checkpoints/cpu-quick-seed0
    python analysis/patching_speedup.py checkpoints/sweep-n1500 --set data.n_individuals=1500 --set train.steps=4000
    python analysis/patching_speedup.py checkpoints/sweep-d128-n1500 --set model.d_model=128 \
        --set model.d_head=32 --set model.d_mlp=512 --set data.n_individuals=1500 --set train.steps=3500
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench import PatchConfig, load_run, resume, train
from workbench.config import override, preset
from workbench.phases import boundaries
from workbench.training.loop import Callback
from workbench.viz.figures import subplots

TARGET = 0.5


class StopPast(Callback):
    """Stop after the first evaluation at or above `accuracy`, or at step `limit`."""

    def __init__(self, accuracy: float, limit: int):
        self.accuracy, self.limit = accuracy, limit

    def on_step_end(self, state) -> None:
        reached = state.last_metrics.get("attribute_accuracy", 0.0) >= self.accuracy
        state.stop = reached or state.step >= self.limit


def crossing(metrics, accuracy: float = TARGET) -> tuple[int, int] | None:
    """(last evaluated step below `accuracy`, first at or above it), or None if never reached."""
    above = metrics["attribute_accuracy"] >= accuracy
    if not above.any():
        return None
    i = int(above.to_numpy().argmax())
    return int(metrics["step"].iloc[max(i - 1, 0)]), int(metrics["step"].iloc[i])


def plot(runs: dict, baseline: float, path: Path) -> None:
    """Attribute loss (with the baseline) and accuracy (with the 50% line) of each run vs steps."""
    fig, (ax_l, ax_a) = subplots(1, 2, figsize=(11, 4))
    for label, m in runs.items():
        ax_l.plot(m["step"], m["attribute_loss"], label=label)
        ax_a.plot(m["step"], m["attribute_accuracy"], label=label)
    ax_l.axhline(baseline, color="k", ls=":", lw=1, label="no-knowledge baseline")
    ax_a.axhline(TARGET, color="k", ls=":", lw=1)
    ax_l.set(ylim=(0, 3 * baseline), ylabel="attribute loss (nats)", xlabel="training step")
    ax_a.set(ylabel="attribute accuracy", xlabel="training step")
    ax_l.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", help="unpatched run directory (trained first when absent)")
    ap.add_argument("--preset", default="cpu-quick")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    ap.add_argument("--layers", type=int, nargs="*", default=[], help="patched layers (default all)")
    ap.add_argument("--figure", type=Path, help="write the two runs' curves to this PNG")
    args = ap.parse_args()
    path = Path(args.run)
    if not (path / "manifest.json").is_file():
        train(override(preset(args.preset).replace(seed=args.seed), args.set), path)
    ref = load_run(path)
    if ref.status != "finished":
        raise SystemExit(f"{path} is {ref.status}: resume it first (workbench train --resume {path})")
    unpatched = crossing(ref.metrics)
    if unpatched is None:
        raise SystemExit(f"{path} never reaches {TARGET:.0%} attribute accuracy")
    final = ref.checkpoint_steps[-1]
    suffix = "-L" + "".join(map(str, args.layers)) if args.layers else ""
    out = Path(f"{path}-patched-ref{final}{suffix}")
    stop = StopPast(TARGET, unpatched[1])
    if not (out / "manifest.json").is_file():
        spec = PatchConfig(reference_run=str(ref.path.absolute()), reference_step=final, layers=tuple(args.layers))
        train(ref.config.replace(patch=spec), out, callbacks=[stop])
    else:
        done = load_run(out).metrics
        if crossing(done) is None and done["step"].max() < unpatched[1]:
            resume(out, callbacks=[stop])  # an interrupted patched run: continue it exactly
    metrics = load_run(out).metrics
    patched = crossing(metrics)
    if args.figure:
        shown = ref.metrics[ref.metrics["step"] <= unpatched[1] + 2 * ref.config.train.eval_every]
        plot(
            {"unpatched": shown, f"patched from step {final}": metrics},
            ref.config.data.no_knowledge_baseline,
            args.figure,
        )
    cfg, ph = ref.config, ref.phases()
    shape = f"N={cfg.data.n_individuals} d{cfg.model.d_model} L{cfg.model.n_layers} {cfg.train.steps} steps"
    if patched is None:
        ratio = f"> {metrics['step'].max() / unpatched[1]:.0%}"
    else:
        ratio = f"{(patched[0] + 1) / unpatched[1]:.1%}-{patched[1] / (unpatched[0] + 1):.1%}"
    base = cfg.data.no_knowledge_baseline
    p_start, p_end = boundaries(metrics["step"].to_numpy(), metrics["attribute_loss"].to_numpy(), base)
    print(
        f"| {shape} | {cfg.seed} | {args.layers or 'all'} | {ph.plateau_start:.0f}-{ph.plateau_end:.0f} "
        f"| {p_start:.0f}-{p_end:.0f} "
        f"| ({unpatched[0]}, {unpatched[1]}] | {'never' if patched is None else f'({patched[0]}, {patched[1]}]'} "
        f"| {ratio} |"
    )


if __name__ == "__main__":
    main()
