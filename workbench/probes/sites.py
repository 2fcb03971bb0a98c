"""Where the probes look: biographies of chosen individuals, name positions, cached activations.

The probes read the residual stream and the MLP at the LAST name token of a biography's FIRST
sentence: there the model has seen the full name and nothing else about the individual (later
sentences could copy values written in earlier ones through attention instead of recalling them).
For contrast, `Batch.value_query_positions` gives, per attribute, the token just before its value
(where the model must output the value's first token). Both token roles are defined on `Batch`.
"""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from workbench.data.batch import Batch
from workbench.data.biography_data import BiographyData
from workbench.data.pools import split_date
from workbench.data.population import GROUPS

_STREAM_PROBES = 31  # rng stream of the probes' biographies (distinct from the data module's streams)


def sample_individuals(data: BiographyData, group: str, n: int, seed: int = 0) -> np.ndarray:
    """`n` distinct individuals of a group (seen | heldout | new), drawn with `seed`."""
    ids = np.asarray(data.population.group(group))
    if not isinstance(n, (int, np.integer)) or not 1 <= n <= len(ids):
        raise ValueError(f"n={n!r} is out of range: allowed an integer in [1, {len(ids)}] (group {group!r})")
    rng = np.random.default_rng([seed, _STREAM_PROBES, GROUPS.index(group)])
    return np.sort(rng.choice(ids, size=n, replace=False))


def biographies(data: BiographyData, individuals, seed: int = 0, split: str = "evaluation") -> Batch:
    """One biography per individual (evaluation templates by default), fixed by `seed`."""
    individuals = np.asarray(individuals, dtype=np.int64)
    n_total = len(data.population.names)
    if individuals.ndim != 1 or len(individuals) == 0 or individuals.min() < 0 or individuals.max() >= n_total:
        raise ValueError(f"individuals must be a non-empty list of ids in [0, {n_total - 1}]")
    rng = np.random.default_rng([seed, _STREAM_PROBES, 99])
    return data.biographer.batch(individuals, split, rng)


@torch.no_grad()
def activations_at(
    model: HookedTransformer, batch: Batch, positions: Int[Tensor, " batch *m"], hook_names: list[str], chunk: int = 128
) -> dict[str, Float[Tensor, "batch *m d"]]:
    """Activations of `hook_names` at given positions of each row (one [batch] or several [batch, m]),
    forwarded in chunks; returned on CPU."""
    device = next(model.parameters()).device
    wanted = set(hook_names)
    parts: dict[str, list[Tensor]] = {h: [] for h in hook_names}
    for i in range(0, len(batch), chunk):
        tokens = batch.tokens[i : i + chunk].to(device)
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in wanted)
        pos = positions[i : i + chunk].to(device)
        rows = torch.arange(len(tokens), device=device).view(-1, *([1] * (pos.ndim - 1)))
        for h in hook_names:
            parts[h].append(cache[h][rows, pos].float().cpu())
    return {h: torch.cat(v) for h, v in parts.items()}


def probe_targets(data: BiographyData, individuals) -> dict[str, tuple[np.ndarray, int]]:
    """Per probed quantity: the individuals' value indices and the number of classes.

    Every attribute is its value index, except the birth date, whose ~thousands of values are split
    into its independently sampled components birth_date.year, birth_date.month, birth_date.day.
    """
    individuals = np.asarray(individuals, dtype=np.int64)
    population, cfg = data.population, data.config.data
    out: dict[str, tuple[np.ndarray, int]] = {}
    for j, a in enumerate(cfg.attributes):
        v = population.values[individuals, j].astype(np.int64)
        if a == "birth_date":
            parts = np.array([split_date(x) for x in v], dtype=np.int64).reshape(-1, 3)
            for k, (part, size) in enumerate((("year", cfg.pool_sizes.years), ("month", 12), ("day", 31))):
                out[f"birth_date.{part}"] = (parts[:, k], size)
        else:
            out[a] = (v, cfg.n_values[a])
    return out


def check_layers(layers, n_layers: int) -> list[int]:
    """None -> every layer; otherwise distinct layer indices in [0, n_layers - 1]."""
    if layers is None:
        return list(range(n_layers))
    layers = list(layers)
    if (
        not layers
        or len(set(layers)) != len(layers)
        or not all(isinstance(l, (int, np.integer)) and 0 <= l < n_layers for l in layers)
    ):
        raise ValueError(
            f"layers={layers!r} is out of range: allowed distinct integers in [0, {n_layers - 1}], or None"
        )
    return [int(l) for l in layers]
