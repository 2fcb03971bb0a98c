"""Name->name by definition (issue 25 item 4): does any definition of first-layer name->name attention
rise across the phases, and what does ablating each layer-0 head do to the attribute loss?

    python analysis/name_attention_definitions.py checkpoints/cpu-quick-seed0   # after `python3 -m workbench main`

Prints Markdown tables: each definition of `workbench.attention.NAME_DEFINITIONS` in layer 0 (mean and
maximum over heads, and uniform attention's value on the same batch as a chance level) at the key steps
(start, plateau start, middle, plateau end, after, end), and the attribute-loss change when each layer-0
head (and all four) is mean- or zero-ablated (`workbench.head_ablation`), on seen and held-out
individuals. Writes analysis/figures/name_attention_definitions.png. Results are cached in the run.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd
import torch

from workbench import load_run
from workbench.attention import (
    NAME_DEFINITIONS,
    head_summary,
    name_definitions_from_patterns,
    name_definitions_over_training,
)
from workbench.head_ablation import head_ablation_over_training
from workbench.viz.figures import log_steps, mark_phases, subplots

FIGURES = Path(__file__).parent / "figures"


def key_steps(run, ph) -> dict[str, int]:
    """Label -> checkpoint: the first, the nearest to the plateau start, middle and end, twice the end, the last."""
    steps = run.checkpoint_steps
    nearest = lambda x: min(steps, key=lambda s: abs(s - x))  # noqa: E731
    out = {"start": steps[0]}
    if not math.isnan(ph.plateau_start):
        out["plateau start"] = nearest(ph.plateau_start)
    if not math.isnan(ph.plateau_end):
        out["mid plateau"] = nearest((ph.plateau_start + ph.plateau_end) / 2)
        out["plateau end"] = nearest(ph.plateau_end)
        out["2x plateau end"] = nearest(2 * ph.plateau_end)
    out["end"] = steps[-1]
    return out


def markdown(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(map(str, df.columns)) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "\n".join(
        "| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |"
        for row in df.itertuples(index=False)
    )


def chance(run, size: int) -> pd.Series:
    """Each definition under uniform causal attention on the evaluation batch (the value at no preference)."""
    batch = run.data.eval_batch("seen", size)
    t = batch.tokens.shape[1]
    causal = torch.tril(torch.ones(t, t, dtype=torch.float64))
    uniform = (causal / causal.sum(-1, keepdim=True)).expand(len(batch), 1, t, t)
    return name_definitions_from_patterns({0: uniform}, batch).set_index("metric")["value"]


@torch.no_grad()
def previous_token(run, steps, size: int) -> pd.DataFrame:
    """Control: each layer-0 head's mean attention to the previous token, at name queries (non-first name
    tokens) and at every other real query (BOS excluded): is a rising name->name head name-specific?"""
    batch = run.data.eval_batch("seen", size)
    start = batch.name_mask.clone()
    start[:, 1:] &= ~batch.name_mask[:, :-1]
    groups = {"name tokens": batch.name_mask & ~start, "other tokens": batch.mask & ~batch.name_mask}
    for mask in groups.values():
        mask[:, 0] = False
    rows = []
    for step in steps:
        _, cache = run.load_model(step).run_with_cache(batch.tokens, names_filter="blocks.0.attn.hook_pattern")
        p = cache["blocks.0.attn.hook_pattern"]  # [batch, head, q, k]
        prev = torch.diagonal(p, offset=-1, dim1=-2, dim2=-1)  # [batch, head, q - 1]: q attending to q - 1
        for group, mask in groups.items():
            m = mask[:, 1:].float()[:, None]
            for h, v in enumerate(((prev * m).sum((0, 2)) / m.sum((0, 2))).tolist()):
                rows.append({"queries": group, "head": h, "step": step, "value": v})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--size", type=int, default=256, help="sequences for the attention definitions")
    ap.add_argument("--ablation-size", type=int, default=128, help="sequences per split for the ablations")
    args = ap.parse_args()
    torch.set_num_threads(1)
    run = load_run(args.run)
    ph = run.phases()
    keys = key_steps(run, ph)
    label = {s: f"{s} ({name})" for name, s in reversed(keys.items())}
    print(f"run {run.path}: {ph.describe()}; key steps {keys}\n")

    att = name_definitions_over_training(run, size=args.size, progress=False)
    summary = head_summary(att[att.layer == 0])
    base = chance(run, args.size)
    rows = []
    for d in NAME_DEFINITIONS:
        s = summary[summary.metric == d].set_index("step")
        for how in ("mean", "max"):
            row = {"definition": d, "over heads": how, "uniform": float(base[d])}
            row |= {label[st]: float(s.loc[st, how]) for st in keys.values()}
            if how == "max":
                row["max head"] = "/".join(str(int(s.loc[st, "max_head"])) for st in keys.values())
            start, end = keys.get("plateau start"), keys.get("plateau end")
            if start is not None and end is not None:
                row["plateau end - start"] = float(s.loc[end, how] - s.loc[start, how])
            rows.append(row)
    print(f"Layer 0, {args.size} seen sequences:\n")
    print(markdown(pd.DataFrame(rows).fillna("")), "\n")
    heads = att[(att.layer == 0) & att.step.isin(keys.values())]
    per_head = heads.pivot_table(index=["metric", "head"], columns="step", values="value").reset_index()
    per_head.columns = [label.get(c, c) for c in per_head.columns]
    print("Per head (layer 0):\n")
    print(markdown(per_head), "\n")

    prev = previous_token(run, sorted(set(keys.values())), args.size)
    prev = prev.pivot_table(index=["queries", "head"], columns="step", values="value").reset_index()
    prev.columns = [label.get(c, c) for c in prev.columns]
    print("Control: attention to the previous token (layer 0):\n")
    print(markdown(prev), "\n")

    abl = head_ablation_over_training(
        run, sorted(set(keys.values())), splits=("seen", "heldout"), size=args.ablation_size, progress=False
    )
    table = abl.pivot_table(index=["split", "kind", "head"], columns="step", values="delta").reset_index()
    table["head"] = table["head"].map(lambda h: "all" if h < 0 else str(h))
    table.columns = [label.get(c, c) for c in table.columns]
    clean = abl.groupby(["split", "step"])["clean_loss"].first().unstack()
    print(
        f"Layer-0 head ablation, attribute loss change (ablated - clean), {args.ablation_size} sequences per split:\n"
    )
    print(markdown(table), "\n")
    print("Clean attribute loss:\n")
    print(markdown(clean.rename(columns=label).reset_index()), "\n")

    fig, axes = subplots(1, 3, figsize=(17, 4.6))
    for ax, how in zip(axes[:2], ("mean", "max")):
        for i, d in enumerate(NAME_DEFINITIONS):
            s = summary[summary.metric == d]
            ax.plot(s.step, s[how], marker="o", ms=2.5, color=f"C{i}", label=d)
            ax.axhline(base[d], color=f"C{i}", ls=":", lw=1)
        ax.set_title(f"layer-0 name->name, {how} over heads (dotted: uniform attention)", fontsize=10)
        ax.set_ylabel("attention mass")
    mean = abl[abl.kind == "mean"]
    for (split, h), g in mean.groupby(["split", "head"]):
        style = {"marker": "o", "ms": 3, "color": f"C{h + 1}", "ls": "-" if split == "seen" else "--"}
        axes[2].plot(g.step, g.delta, label=f"{'all heads' if h < 0 else f'head {h}'}, {split}", **style)
    axes[2].set_title("mean-ablating layer-0 heads: attribute loss change", fontsize=10)
    axes[2].set_ylabel("ablated - clean attribute loss (nats)")
    for ax in axes:
        log_steps(ax, run.config.train.eval_every)
        mark_phases(ax, ph)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    FIGURES.mkdir(exist_ok=True)
    fig.savefig(FIGURES / "name_attention_definitions.png", dpi=110, bbox_inches="tight")


if __name__ == "__main__":
    main()
