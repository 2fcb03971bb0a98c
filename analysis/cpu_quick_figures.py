"""Regenerate the figures and tables of analysis/NOTES.md from a reference run (and its patch grid).

    python analysis/cpu_quick_figures.py checkpoints/cpu-quick-seed0 \
        --grid checkpoints/cpu-quick-seed0-patch-grid

Writes analysis/figures/cpu_quick_{phases,attribute_to_name_last,attribute_to_text_last,
name_to_name_first,patch_grid}.png and prints Markdown tables: the metrics at eight steps, the phases,
last-layer name attention at the checkpoints, the grid. Attention metrics are cached in the run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from workbench import load_run
from workbench.attention import attention_over_training
from workbench.patching import grid_curves, read_grid_csv
from workbench.viz import plot_attention_over_training, plot_grid
from workbench.viz.figures import plot_phases

FIGURES = Path(__file__).parent / "figures"
COLUMNS = {
    "attribute_loss": "attribute loss",
    "attribute_accuracy": "accuracy",
    "heldout_attribute_loss": "held-out loss",
    "heldout_top_probability": "held-out top-p",
    "top_probability": "seen top-p",
    "heldout_entropy": "held-out entropy",
    "entropy": "seen entropy",
}
VIEWS = {
    "attribute_to_name_last": ("attribute->name", "last"),
    "attribute_to_text_last": ("attribute->text", "last"),
    "name_to_name_first": ("name->name", "first"),
}


def markdown(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(map(str, df.columns)) + " |\n|" + "---:|" * len(df.columns) + "\n"
    return head + "\n".join(
        "| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row) + " |"
        for row in df.itertuples(index=False)
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--grid", type=Path, help="a patch-grid folder of this run (grid.csv)")
    ap.add_argument("--size", type=int, default=None, help="sequences for attention metrics (default eval_size)")
    args = ap.parse_args()
    run, prefix = load_run(args.run), "cpu_quick_"
    ph, m = run.phases(), run.metrics
    steps = m["step"].iloc[[round(i * (len(m) - 1) / 7) for i in range(8)]]
    table = m[m["step"].isin(steps)][["step", *COLUMNS]].rename(columns=COLUMNS)
    print(markdown(table.astype({"step": int})), "\n")
    print(
        f"phases: {ph}; final accuracy {m['attribute_accuracy'].iloc[-1]:.3f}; "
        f"baseline {run.config.data.no_knowledge_baseline:.3f}\n"
    )
    plot_phases(run, ph).savefig(FIGURES / f"{prefix}phases.png", dpi=110, bbox_inches="tight")

    att = attention_over_training(run, size=args.size or run.config.train.eval_size)
    last = run.config.model.n_layers - 1
    means = att.groupby(["metric", "layer", "step"])["value"].mean()
    rows = {
        f"{metric} (layer {last})": means[metric][last]
        for metric in ("attribute->name", "attribute->text", "attribute:sharpness")
    }
    rows["name->name (layer 0)"] = means["name->name"][0]
    print(markdown(pd.DataFrame(rows).reset_index().astype({"step": int})), "\n")
    for name, (metric, layer) in VIEWS.items():
        plot_attention_over_training(att, metric, layer, ph).savefig(
            FIGURES / f"{prefix}{name}.png", dpi=110, bbox_inches="tight"
        )
    if args.grid:
        grid = read_grid_csv(args.grid / "grid.csv")
        print(markdown(grid.drop(columns="run")))
        plot_grid(grid, grid_curves(grid), run.config.data.no_knowledge_baseline).savefig(
            FIGURES / f"{prefix}patch_grid.png", dpi=110, bbox_inches="tight"
        )


if __name__ == "__main__":
    main()
