"""The MLP as a key-value memory (docs/method.md §5): which neurons fire for a name, what they write.

Keys: the k neurons of layer l with the largest activation (`blocks.{l}.mlp.hook_post`) at the last
name token of the individual's first sentence (`probes.sites`). Values: what a neuron writes toward
the attribute-value tokens through the unembedding, by direct logit attribution without the final
LayerNorm: activation * (W_out[l][neuron] @ W_U)[token], read on the FIRST token of each attribute
value (for birth dates, the month), among the first tokens of the attribute's pool.

Overwrite during fine-tuning: an individual's memory counts as overwritten when its top-k keys change
(Jaccard similarity of the before/after key sets < KEYS_CHANGED_BELOW = 0.5, i.e. fewer than about
two thirds of the keys kept) or when its decoded value changes for some attribute (argmax over the
attribute pool's first tokens of the direct logit contribution of the top-k neurons, or, with
decode="mlp", of the whole MLP output at the name position).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from workbench.data.biography_data import BiographyData
from workbench.over_checkpoints import model_sha256, over_checkpoints
from workbench.probes.sites import activations_at, biographies, check_layers, sample_individuals

KEYS_CHANGED_BELOW = 0.5  # Jaccard threshold under which the top-k keys count as changed
VIEW_COLUMNS = ["neuron", "activation", "attribute", "value_token", "logit_contribution", "pool_rank"]
OVERWRITE_COLUMNS = ["layer", "keys_changed", "values_changed", "overwritten", "mean_jaccard", "value_change_rate", "n"]


def pool_first_tokens(data: BiographyData) -> list[Int[Tensor, " n_tokens"]]:
    """Per attribute: the distinct first tokens of its pool's values (months for birth dates)."""
    bio = data.biographer
    out = []
    for j in range(len(data.config.data.attributes)):
        lists = bio.month if bio.values[j] is None else bio.values[j]
        out.append(torch.as_tensor(sorted({t[0] for t in lists})))
    return out


def value_first_tokens(data: BiographyData, individuals) -> Int[Tensor, "n attribute"]:
    """The first token of each individual's attribute values."""
    bio = data.biographer
    n_attr = len(data.config.data.attributes)
    return torch.as_tensor([[bio.value_tokens(int(i), j)[0] for j in range(n_attr)] for i in individuals])


def _check_k(k, d_mlp: int) -> None:
    if not isinstance(k, int) or not 1 <= k <= d_mlp:
        raise ValueError(f"k={k!r} is out of range: allowed an integer in [1, {d_mlp}]")


def neuron_activations(
    model: HookedTransformer, data: BiographyData, individuals, layer: int, seed: int = 0
) -> Float[Tensor, "n d_mlp"]:
    """Layer `layer`'s MLP activations at each individual's last name token (first sentence)."""
    check_layers([layer], model.cfg.n_layers)
    batch = biographies(data, individuals, seed)
    hook = f"blocks.{layer}.mlp.hook_post"
    return activations_at(model, batch, batch.first_name_end, [hook])[hook]


def _unembed_rows(model: HookedTransformer, layer: int, neurons: Int[Tensor, " k"]) -> Float[Tensor, "k vocab"]:
    with torch.no_grad():
        return (model.W_out[layer][neurons] @ model.W_U).float().cpu()


def key_value_view(
    model: HookedTransformer, data: BiographyData, individual: int, layer: int, k: int = 10, seed: int = 0
) -> pd.DataFrame:
    """The top-k key neurons of an individual at a layer and what each writes on its attribute values.

    One row per (neuron, attribute): activation, the value's first token (text), the neuron's direct
    logit contribution to it, and that token's rank (0 = top) among the attribute pool's first tokens.
    """
    _check_k(k, model.cfg.d_mlp)
    acts = neuron_activations(model, data, [individual], layer, seed)[0]
    top = acts.topk(k)
    logits = _unembed_rows(model, layer, top.indices) * top.values[:, None]  # [k, vocab]
    targets = value_first_tokens(data, [individual])[0]
    pools = pool_first_tokens(data)
    strings = data.tokenizer.token_strings(targets.tolist())
    rows = []
    for r, (neuron, act) in enumerate(zip(top.indices.tolist(), top.values.tolist())):
        for j, attr in enumerate(data.config.data.attributes):
            contrib = logits[r, targets[j]].item()
            rank = int((logits[r, pools[j]] > contrib).sum())
            rows.append(
                {
                    "neuron": neuron,
                    "activation": act,
                    "attribute": attr,
                    "value_token": strings[j],
                    "logit_contribution": contrib,
                    "pool_rank": rank,
                }
            )
    return pd.DataFrame(rows, columns=VIEW_COLUMNS)


def decoded_values(
    model: HookedTransformer,
    data: BiographyData,
    individuals,
    layer: int,
    k: int = 10,
    decode: str = "topk",
    seed: int = 0,
) -> tuple[Int[Tensor, "n k"], Int[Tensor, "n attribute"]]:
    """(top-k key neurons, decoded first value token per attribute) of each individual at a layer."""
    if decode not in ("topk", "mlp"):
        raise ValueError(f"decode={decode!r} is out of range: allowed topk | mlp")
    _check_k(k, model.cfg.d_mlp)
    acts = neuron_activations(model, data, individuals, layer, seed)
    top = acts.topk(k, dim=1)
    with torch.no_grad():
        w_out, w_u = model.W_out[layer].float().cpu(), model.W_U.float().cpu()
        if decode == "topk":
            written = (top.values[..., None] * w_out[top.indices]).sum(1)  # [n, d_model]
        else:
            written = acts @ w_out  # the MLP output at the name, biases excluded
        logits = written @ w_u
    decoded = torch.stack([pool[logits[:, pool].argmax(1)] for pool in pool_first_tokens(data)], dim=1)
    return top.indices, decoded


def jaccard(a: Int[Tensor, "n k"], b: Int[Tensor, "n k"]) -> Float[Tensor, " n"]:
    """Row-wise Jaccard similarity of two sets of neuron indices."""
    inter = torch.tensor([len(set(x) & set(y)) for x, y in zip(a.tolist(), b.tolist())], dtype=torch.float32)
    return inter / (a.shape[1] + b.shape[1] - inter)


def overwrite_details(
    model_before: HookedTransformer,
    model_after: HookedTransformer,
    data: BiographyData,
    individuals,
    layer: int,
    k: int = 10,
    decode: str = "topk",
    seed: int = 0,
) -> pd.DataFrame:
    """Per individual: Jaccard of the top-k keys before/after, and which decoded values changed."""
    keys0, dec0 = decoded_values(model_before, data, individuals, layer, k, decode, seed)
    keys1, dec1 = decoded_values(model_after, data, individuals, layer, k, decode, seed)
    jac = jaccard(keys0, keys1)
    changed = dec0 != dec1
    return pd.DataFrame(
        {
            "individual": np.asarray(individuals, dtype=np.int64),
            "jaccard": jac.numpy(),
            "keys_changed": (jac < KEYS_CHANGED_BELOW).numpy(),
            "n_values_changed": changed.sum(1).numpy(),
            "values_changed": changed.any(1).numpy(),
        }
    )


def overwrite(
    model_before: HookedTransformer,
    model_after: HookedTransformer,
    data: BiographyData,
    individuals,
    layer: int,
    k: int = 10,
    decode: str = "topk",
    seed: int = 0,
) -> dict[str, float | int]:
    """Fractions of individuals whose keys changed, whose decoded value changed (for some attribute), or
    either (overwritten); the mean key Jaccard; value_change_rate = the fraction of (individual,
    attribute) pairs whose decoded value changed (less saturated than values_changed)."""
    d = overwrite_details(model_before, model_after, data, individuals, layer, k, decode, seed)
    n_attr = len(data.config.data.attributes)
    return {
        "layer": layer,
        "keys_changed": float(d["keys_changed"].mean()),
        "values_changed": float(d["values_changed"].mean()),
        "overwritten": float((d["keys_changed"] | d["values_changed"]).mean()),
        "mean_jaccard": float(d["jaccard"].mean()),
        "value_change_rate": float(d["n_values_changed"].mean() / n_attr),
        "n": len(d),
    }


def overwrite_over_checkpoints(
    finetune_run,
    base_model: HookedTransformer | None = None,
    individuals=None,
    n: int = 64,
    layers: list[int] | None = None,
    k: int = 10,
    decode: str = "topk",
    steps: list[int] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """`overwrite` of pre-training individuals at each checkpoint of a fine-tuning run vs the base model.

    base_model: default, the fine-tuning run's base checkpoint (config.finetune.base_run, base_step).
    individuals: default, `n` pre-training individuals drawn with `seed`. Long format: step, layer, ...
    Cached in <run>/analysis/overwrite.csv (`over_checkpoints`; params: the base model's weights hash and
    the arguments).
    """
    if base_model is None:
        if finetune_run.config.finetune is None:
            raise ValueError(f"run {finetune_run.path} is not a fine-tuning run: pass base_model")
        from workbench.run import load_run

        ft = finetune_run.config.finetune
        base_model = load_run(ft.base_run).load_model(ft.base_step)
    layers = check_layers(layers, base_model.cfg.n_layers)
    params = {
        "base_weights": model_sha256(base_model),
        "n": n,
        "layers": layers,
        "k": k,
        "decode": decode,
        "seed": seed,
        "individuals": None if individuals is None else [int(i) for i in individuals],
    }
    data = finetune_run.data
    if individuals is None:
        individuals = sample_individuals(data, "seen", min(n, len(data.population.seen)), seed)

    def compute(step, models):
        rows = [overwrite(base_model, models(step), data, individuals, l, k, decode, seed) for l in layers]
        return pd.DataFrame(rows, columns=OVERWRITE_COLUMNS)

    df = over_checkpoints(finetune_run, "overwrite", compute, steps, params, progress)
    return df[["step", *OVERWRITE_COLUMNS]]
