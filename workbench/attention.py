"""Name-token attention metrics (docs/method.md §2.5, §4.4), per layer and head, on a fixed evaluation set.

Queries and keys are chosen from the batch's token labels (kind, attribute, value_start):

* ``name->name``: from the last name token of each name occurrence (one per sentence) to the
  other name tokens of the same occurrence (summed attention mass); the study shows layer 0.
* at each attribute query, the position just before an attribute value's first token (where the
  model predicts that token), the summed attention mass to:
  ``attribute->name`` every name token, ``attribute->own_name`` the name tokens of the same
  sentence, ``attribute->text`` template text (BOS excluded), ``attribute->bos`` the BOS token,
  ``attribute->value`` earlier attribute values (the last four add up to 1); the study shows the
  last layer.
* ``name:sharpness`` / ``attribute:sharpness``: attention entropy / log(number of attendable
  tokens) at those queries, i.e. a normalised entropy: 1 = uniform over the causal prefix,
  0 = all mass on one token (lower is sharper).

Every value is a mean over all queries of the evaluation set (all sequences pooled).
`NAME_DEFINITIONS` are alternatives to ``name->name`` (other queries, other keys; `name_definitions`,
`head_summary` for the per-head maximum), to ask whether any of them shows the study's rise.
`attention_over_training` computes them at every checkpoint of a run and caches the result in
``<run>/analysis/attention_metrics.csv`` so that notebooks re-run fast.
"""

from __future__ import annotations

import functools
import math

import pandas as pd
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from workbench.data.batch import Batch
from workbench.data.kinds import BOS, NAME, TEXT, VALUE
from workbench.over_checkpoints import over_checkpoints

Patterns = dict[int, Float[Tensor, "batch head query key"]]

NAME_METRICS = ("name->name", "name:sharpness")
ATTRIBUTE_METRICS = (
    "attribute->name",
    "attribute->own_name",
    "attribute->text",
    "attribute->bos",
    "attribute->value",
    "attribute:sharpness",
)
METRICS: tuple[str, ...] = NAME_METRICS + ATTRIBUTE_METRICS
COLUMNS = ["layer", "head", "metric", "value"]

# metric -> (sum over queries [layer, head] float64, number of queries)
Sums = dict[str, tuple[Tensor, int]]


def resolve_layer(layer: int | str, n_layers: int) -> int:
    """'first' -> 0, 'last' -> n_layers - 1, an int in [0, n_layers) -> itself."""
    if layer == "first":
        return 0
    if layer == "last":
        return n_layers - 1
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n_layers:
        raise ValueError(f"layer={layer!r} is out of range: allowed 'first', 'last' or an int in [0, {n_layers})")
    return layer


def query_masks(batch: Batch) -> dict[str, Bool[Tensor, "batch pos"]]:
    """The query positions of the two metric groups: last name tokens and attribute queries."""
    return {"name": batch.name_end_mask, "attribute": batch.value_query_mask}


def _key_masks(batch: Batch, rows: Tensor, pos: Tensor, group: str) -> dict[str, Tensor]:
    """Boolean [n_queries, key] masks of the keys each metric of a query group sums over."""
    kind = batch.kind[rows]
    own = batch.attribute[rows] == batch.attribute[rows, pos][:, None]
    is_name = kind == NAME
    if group == "name":
        other = torch.arange(kind.shape[1], device=kind.device)[None, :] != pos[:, None]
        return {"name->name": is_name & own & other}
    return {
        "attribute->name": is_name,
        "attribute->own_name": is_name & own,
        "attribute->text": kind == TEXT,
        "attribute->bos": kind == BOS,
        "attribute->value": kind == VALUE,
    }


def _checked_layers(patterns: Patterns, batch: Batch) -> list[int]:
    """The sorted layers of `patterns`; ValueError unless each is [batch, head, pos, pos] for `batch`."""
    if not patterns:
        raise ValueError("patterns is empty: need at least one layer")
    layers = sorted(patterns)
    for layer in layers:
        p = patterns[layer]
        if p.ndim != 4 or p.shape[0] != len(batch) or tuple(p.shape[2:]) != (batch.tokens.shape[1],) * 2:
            raise ValueError(
                f"patterns[{layer}] has shape {tuple(p.shape)}: expected "
                f"[{len(batch)}, head, {batch.tokens.shape[1]}, {batch.tokens.shape[1]}]"
            )
    return layers


@torch.no_grad()
def pattern_sums(patterns: Patterns, batch: Batch) -> Sums:
    """Per metric: the sum over queries of the metric's value [layer, head], and the query count."""
    layers = _checked_layers(patterns, batch)
    batch = batch.to(patterns[layers[0]].device)
    out: Sums = {}
    for group, mask in query_masks(batch).items():
        rows, pos = mask.nonzero(as_tuple=True)
        keys = _key_masks(batch, rows, pos, group)
        if group == "name":  # an occurrence needs another name token to attend to
            keep = keys["name->name"].any(-1)
            rows, pos, keys = rows[keep], pos[keep], {k: v[keep] for k, v in keys.items()}
        log_n = torch.log((pos + 1).double())  # attendable tokens: the causal prefix, BOS included
        sums = {k: [] for k in [*keys, f"{group}:sharpness"]}
        for layer in layers:
            q = patterns[layer][rows, :, pos, :].double()  # [n_queries, head, key]
            for name, m in keys.items():
                sums[name].append(torch.einsum("nhk,nk->h", q, m.double()))
            entropy = -torch.xlogy(q, q).sum(-1)  # [n_queries, head]
            sums[f"{group}:sharpness"].append((entropy / log_n[:, None]).sum(0))
        out.update({k: (torch.stack(v).cpu(), len(rows)) for k, v in sums.items()})
    return out


def add_sums(a: Sums | None, b: Sums) -> Sums:
    return b if a is None else {k: (a[k][0] + b[k][0], a[k][1] + b[k][1]) for k in b}


def sums_frame(sums: Sums, layers: list[int], metrics: tuple[str, ...] = METRICS) -> pd.DataFrame:
    """Long DataFrame (layer, head, metric, value) of the means; nan where a metric had no query."""
    rows = []
    for metric in metrics:
        total, n = sums[metric]
        mean = (total / n) if n else torch.full_like(total, math.nan)
        for i, layer in enumerate(layers):
            rows += [(layer, h, metric, float(v)) for h, v in enumerate(mean[i].tolist())]
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.sort_values(["layer", "head", "metric"], kind="stable").reset_index(drop=True)


def metrics_from_patterns(patterns: Patterns, batch: Batch) -> pd.DataFrame:
    """The attention metrics of hand-made or cached patterns {layer: [batch, head, query, key]}."""
    return sums_frame(pattern_sums(patterns, batch), sorted(patterns))


@torch.no_grad()
def attention_metrics(model, batch: Batch, chunk: int = 32) -> pd.DataFrame:
    """The attention metrics of `model` on `batch`, every layer and head (long format)."""
    if chunk < 1:
        raise ValueError(f"chunk={chunk!r} is out of range: allowed >= 1")
    if len(batch) == 0:
        raise ValueError("batch is empty")
    return sums_frame(_model_sums(model, batch, chunk, pattern_sums), list(range(model.cfg.n_layers)))


def _model_sums(model, batch: Batch, chunk: int, sums_of) -> Sums:
    """`sums_of(patterns, sub_batch)` added up over chunks of `batch`, from `model`'s patterns of every layer."""
    n_layers, device = model.cfg.n_layers, next(model.parameters()).device
    total: Sums | None = None
    for i in range(0, len(batch), chunk):
        sub = batch[i : i + chunk].to(device)
        _, cache = model.run_with_cache(
            sub.tokens, names_filter=lambda n: n.endswith("hook_pattern"), stop_at_layer=n_layers
        )  # skip the unembedding
        patterns = {layer: cache[f"blocks.{layer}.attn.hook_pattern"] for layer in range(n_layers)}
        total = add_sums(total, sums_of(patterns, sub))
        del cache, patterns
    return total


# ---------------------------------------------------------------------------------------------
# name->name by definition: which name tokens query, which keys count (issue 25 item 4)

NAME_DEFINITIONS: dict[str, str] = {
    "name->name": "the default, METRICS' name->name: the last token of each name occurrence -> the "
    "occurrence's other tokens (the same on unpacked rows, the evaluation sets; METRICS' also counts "
    "the same sentence's name in other biographies of a packed row)",
    "name->name:to_first": "the last token of each occurrence -> the occurrence's first token only (for "
    "names of 3+ tokens this skips the adjacent token, which a previous-token head covers)",
    "name->name:every_query": "every non-first token of each occurrence -> the occurrence's earlier tokens "
    "(the middle name queries too)",
    "name->name:first_occurrence": "the default restricted to each biography's first occurrence, where the "
    "name has not been seen before",
    "name->name:any_name": "the last token of each occurrence -> every other name token before it, earlier "
    "occurrences of the name included",
    "name->name:earlier_occurrences": "the last token of each later occurrence -> the name tokens of the "
    "earlier occurrences only (same biography)",
}


def _occurrences(batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
    """Per token: its name occurrence's index in the row and in its biography (-1 off names), and
    whether it starts an occurrence (an occurrence = a run of name tokens within one sentence)."""
    is_name = batch.name_mask
    start = is_name.clone()
    start[:, 1:] &= ~(is_name[:, :-1] & (batch.attribute[:, 1:] == batch.attribute[:, :-1]))
    seen = start.long().cumsum(1)  # occurrences started so far
    base = torch.where(batch.kind == BOS, seen, 0).cummax(1).values  # ... before the biography's BOS
    occ = (seen - 1).masked_fill(~is_name, -1)
    return occ, (seen - base - 1).masked_fill(~is_name, -1), start


def _name_queries_keys(batch: Batch, definition: str) -> tuple[Tensor, Tensor, Tensor]:
    """The definition's query positions (rows, pos) and their [n_queries, key] key masks; queries
    without any key (e.g. a one-token name, or a first occurrence for earlier_occurrences) are dropped."""
    occ, occ_in_bio, start = _occurrences(batch)
    query = {
        "name->name:every_query": batch.name_mask & ~start,
        "name->name:first_occurrence": batch.name_end_mask & (occ_in_bio == 0),
    }.get(definition, batch.name_end_mask)
    rows, pos = query.nonzero(as_tuple=True)
    key_pos = torch.arange(batch.tokens.shape[1], device=pos.device)[None, :]
    before = key_pos < pos[:, None]
    name = batch.name_mask[rows] & before
    same = name & (occ[rows] == occ[rows, pos][:, None])
    earlier = (
        name & (occ[rows] < occ[rows, pos][:, None]) & (batch.biography[rows] == batch.biography[rows, pos][:, None])
    )
    keys = {
        "name->name:to_first": same & start[rows],
        "name->name:any_name": same | earlier,
        "name->name:earlier_occurrences": earlier,
    }.get(definition, same)
    keep = keys.any(-1)
    return rows[keep], pos[keep], keys[keep]


def check_definitions(definitions) -> tuple[str, ...]:
    """`definitions` as a tuple; ValueError unless it is a non-empty subset of NAME_DEFINITIONS."""
    definitions = (definitions,) if isinstance(definitions, str) else tuple(definitions)
    bad = [d for d in definitions if d not in NAME_DEFINITIONS]
    if bad or not definitions:
        raise ValueError(
            f"definitions={definitions!r} is not allowed: allowed a non-empty subset of {list(NAME_DEFINITIONS)}"
        )
    return definitions


@torch.no_grad()
def name_definition_sums(patterns: Patterns, batch: Batch, definitions=tuple(NAME_DEFINITIONS)) -> Sums:
    """Per definition: the summed attention mass from its queries to its keys, summed over queries
    [layer, head], and the query count (the default is `pattern_sums`'s ``name->name``)."""
    definitions = check_definitions(definitions)
    layers = _checked_layers(patterns, batch)
    batch = batch.to(patterns[layers[0]].device)
    out: Sums = {}
    for d in definitions:
        rows, pos, keys = _name_queries_keys(batch, d)
        per_layer = [
            torch.einsum("nhk,nk->h", patterns[layer][rows, :, pos, :].double(), keys.double()) for layer in layers
        ]
        out[d] = (torch.stack(per_layer).cpu(), len(rows))
    return out


def name_definitions_from_patterns(
    patterns: Patterns, batch: Batch, definitions=tuple(NAME_DEFINITIONS)
) -> pd.DataFrame:
    """The name->name definitions (long: layer, head, metric, value) of patterns {layer: [batch, head, q, k]}."""
    definitions = check_definitions(definitions)
    return sums_frame(name_definition_sums(patterns, batch, definitions), sorted(patterns), definitions)


@torch.no_grad()
def name_definitions(model, batch: Batch, definitions=tuple(NAME_DEFINITIONS), chunk: int = 32) -> pd.DataFrame:
    """The name->name definitions of `model` on `batch`, every layer and head (long format)."""
    definitions = check_definitions(definitions)
    if chunk < 1:
        raise ValueError(f"chunk={chunk!r} is out of range: allowed >= 1")
    if len(batch) == 0:
        raise ValueError("batch is empty")
    sums = _model_sums(model, batch, chunk, lambda p, b: name_definition_sums(p, b, definitions))
    return sums_frame(sums, list(range(model.cfg.n_layers)), definitions)


def head_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per (step,) layer and metric of a long frame: the mean over heads, the maximum over heads and the
    head that attains it (the per-head maximum picks out one name-gathering head that the mean dilutes)."""
    keys = [c for c in ("step", "layer", "metric") if c in df.columns]
    df = df.dropna(subset=["value"])
    g = df.groupby(keys, sort=True)["value"]
    out = g.agg(mean="mean", max="max").reset_index()
    out["max_head"] = df.loc[g.idxmax().values, "head"].to_numpy()
    return out


# ---------------------------------------------------------------------------------------------
# over training, cached in the run directory


def attention_over_training(
    run, steps: list[int] | None = None, size: int = 256, progress: bool = True, chunk: int = 32
) -> pd.DataFrame:
    """Attention metrics (step, layer, head, metric, value) at checkpoints of a run.

    Computed on the run's fixed evaluation set `run.data.eval_batch("seen", size)`, at every
    checkpoint (or at `steps`). Results are cached in <run>/analysis/attention_metrics.csv, keyed by
    step, the checkpoint's weights hash and size (`over_checkpoints`); only the steps the cache does not
    cover are computed.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size={size!r} is out of range: allowed an int >= 1")
    batch = functools.cache(lambda: run.data.eval_batch("seen", size))  # built only if a step is computed

    def compute(step, models):
        return attention_metrics(models(step), batch(), chunk)

    df = over_checkpoints(run, "attention_metrics", compute, steps, {"size": size}, progress)
    return df[["step", *COLUMNS]]


def name_definitions_over_training(
    run, steps: list[int] | None = None, size: int = 256, progress: bool = True, chunk: int = 32
) -> pd.DataFrame:
    """Every name->name definition (step, layer, head, metric, value) at checkpoints of a run, on
    `run.data.eval_batch("seen", size)`; cached in <run>/analysis/name_definitions.csv like
    `attention_over_training`."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size={size!r} is out of range: allowed an int >= 1")
    batch = functools.cache(lambda: run.data.eval_batch("seen", size))

    def compute(step, models):
        return name_definitions(models(step), batch(), chunk=chunk)

    params = {"size": size, "definitions": list(NAME_DEFINITIONS)}
    df = over_checkpoints(run, "name_definitions", compute, steps, params, progress)
    return df[["step", *COLUMNS]]
