"""Does patching from a post-plateau reference remove the plateau? (digest §4.3; issue acceptance)

Trains the reference's own config (same schedule, same initial weights) with attention patterns
patched from `RUN@STEP` from step 0, stopping after `--stop` steps, and prints the step at which
attribute accuracy first reaches 50% next to the unpatched reference's.

    python analysis/patched_vs_unpatched.py checkpoints/cpu-quick-seed0@2500 --stop 750
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench import PatchConfig, load_run, train
from workbench.training.loop import Callback


class StopAt(Callback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, state) -> None:
        state.stop = state.step >= self.step


def first_step_at(metrics, accuracy: float = 0.5):
    hit = metrics[metrics["attribute_accuracy"] >= accuracy]["step"]
    return int(hit.iloc[0]) if len(hit) else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("reference", metavar="RUN@STEP")
    ap.add_argument("--stop", type=int, default=750)
    args = ap.parse_args()
    path, _, step = args.reference.rpartition("@")
    ref = load_run(path)
    out = Path(f"{path}-patched-ref{step}-full")
    if not (out / "manifest.json").is_file():
        cfg = ref.config.replace(patch=PatchConfig(reference_run=str(ref.path.absolute()), reference_step=int(step)))
        train(cfg, out, callbacks=[StopAt(args.stop)])
    patched = load_run(out)
    print(f"unpatched: 50% accuracy at step {first_step_at(ref.metrics)} of {ref.config.train.steps}")
    print(f"patched from step {step}: 50% accuracy at step {first_step_at(patched.metrics)} "
          f"(trained {patched.metrics['step'].max()} steps)")
    print(patched.metrics[["step", "attribute_loss", "attribute_accuracy"]].iloc[::2].round(3).to_string(index=False))


if __name__ == "__main__":
    main()
