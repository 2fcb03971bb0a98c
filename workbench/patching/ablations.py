"""Interactive causal analyses of one biography for notebooks: activation patching, pattern patching, ablations.

A clean biography of an individual and a corrupted twin (the name replaced everywhere by another
individual's name of the same token length; same templates, sentence order and values, so every
position aligns) are scored by the log-probability of the clean attribute value (summed over its
tokens, teacher forced). Works on any checkpoint (`run.load_model(step)`).

    pair = make_pair(run.data, individual=3, attribute="birth_city")
    df = activation_patching(model, pair.clean, pair.corrupted, pair.target, "resid_pre", labels=pair.labels)
    plot_layer_position(df)
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import torch
import transformer_lens.patching as tl_patching
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.utilities import get_act_name

from workbench.data.batch import Batch
from workbench.data.kinds import VALUE, token_labels
from workbench.patching.hooks import patch_patterns
from workbench.patching.sources import Patterns, PatternSource, ReferencePatterns

# component -> TransformerLens patching function; layer x position, then per head (all positions)
POSITION_COMPONENTS = {
    "resid_pre": tl_patching.get_act_patch_resid_pre,
    "resid_mid": tl_patching.get_act_patch_resid_mid,
    "resid_post": partial(
        tl_patching.generic_activation_patch,
        patch_setter=tl_patching.layer_pos_patch_setter,
        activation_name="resid_post",
        index_axis_names=("layer", "pos"),
    ),
    "attn_out": tl_patching.get_act_patch_attn_out,
    "mlp_out": tl_patching.get_act_patch_mlp_out,
}
HEAD_COMPONENTS = {
    "q": tl_patching.get_act_patch_attn_head_q_all_pos,
    "k": tl_patching.get_act_patch_attn_head_k_all_pos,
    "v": tl_patching.get_act_patch_attn_head_v_all_pos,
    "z": tl_patching.get_act_patch_attn_head_out_all_pos,
    "pattern": tl_patching.get_act_patch_attn_head_pattern_all_pos,
}


@dataclass(frozen=True)
class ValueTarget:
    """An attribute value's tokens and their positions; the score is their summed log-probability."""

    positions: Sequence[int]  # positions of the value tokens (each predicted from position - 1); stored as a tuple
    tokens: Sequence[int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "positions", tuple(int(p) for p in self.positions))
        object.__setattr__(self, "tokens", tuple(int(t) for t in self.tokens))
        if not self.positions or len(self.positions) != len(self.tokens):
            raise ValueError(
                f"target: positions ({len(self.positions)}) and tokens ({len(self.tokens)}) must be "
                "non-empty and of equal length"
            )
        if min(self.positions) < 1:
            raise ValueError(
                f"target.positions={self.positions}: allowed positions >= 1 (position 0 is never predicted)"
            )

    @property
    def final_position(self) -> int:
        """The last position whose logits enter the score (it predicts the value's last token)."""
        return self.positions[-1] - 1

    def score(self, logits: Float[Tensor, "batch pos vocab"]) -> Float[Tensor, ""]:
        """Sum over the value's tokens of log p(token | prefix), averaged over the batch."""
        pred = torch.tensor([p - 1 for p in self.positions], device=logits.device)
        logp = torch.log_softmax(logits[:, pred].float(), dim=-1)  # [batch, n_value_tokens, vocab]
        tok = torch.tensor(self.tokens, device=logits.device)[None, :, None].expand(logits.shape[0], -1, 1)
        return logp.gather(-1, tok)[..., 0].sum(-1).mean()


@dataclass(frozen=True)
class PatchingPair:
    """A clean biography and its corrupted twin (names swapped), aligned position by position."""

    clean: Int[Tensor, "1 pos"]
    corrupted: Int[Tensor, "1 pos"]
    target: ValueTarget
    labels: tuple[str, ...]  # clean token labels: names as [tok], attribute values as <tok>
    corrupted_labels: tuple[str, ...]
    name_positions: tuple[int, ...]
    individual: int
    corrupt_with: int
    attribute: str
    value: str

    @property
    def value_positions(self) -> tuple[int, ...]:
        return self.target.positions


def make_pair(
    data,
    individual: int,
    attribute: str | int,
    corrupt_with: int | None = None,
    seed: int = 0,
    split: str = "evaluation",
) -> PatchingPair:
    """Clean and corrupted biographies of `individual` (templates of `split`, drawn with `seed`).

    corrupt_with: the individual whose name replaces the clean one; None picks (with `seed`) a
    training individual whose name has as many tokens and differs at every name token.
    """
    population, bio = data.population, data.biographer
    attributes = data.config.data.attributes
    n_total = len(population.names)
    if not isinstance(individual, (int, np.integer)) or not 0 <= individual < n_total:
        raise ValueError(f"individual={individual!r} is out of range: allowed integers in [0, {n_total - 1}]")
    if isinstance(attribute, (int, np.integer)):
        if not 0 <= attribute < len(attributes):
            raise ValueError(f"attribute={attribute!r} is out of range: allowed [0, {len(attributes) - 1}] or a name")
        attribute = attributes[attribute]
    if attribute not in attributes:
        raise ValueError(f"attribute={attribute!r} is unknown: allowed one of {attributes}")
    a = attributes.index(attribute)
    name = bio.name_tokens(int(individual))
    if corrupt_with is None:
        corrupt_with = bio.name_partner(int(individual), population.seen, seed)
        if corrupt_with is None:
            raise ValueError(
                f"individual={individual}: no seen individual has a name of {len(name)} tokens "
                "differing at every token; pass corrupt_with explicitly"
            )
    elif (
        not isinstance(corrupt_with, (int, np.integer)) or not 0 <= corrupt_with < n_total or corrupt_with == individual
    ):
        raise ValueError(
            f"corrupt_with={corrupt_with!r} is out of range: allowed another individual in [0, {n_total - 1}]"
        )
    other = bio.name_tokens(int(corrupt_with))
    if len(other) != len(name):
        raise ValueError(
            f"corrupt_with={corrupt_with}: its name has {len(other)} tokens, the clean name {len(name)}; "
            "allowed an individual whose name has the same number of tokens"
        )

    batch = bio.batch(np.array([individual]), split, np.random.default_rng(seed))
    clean, kind = batch.tokens[:1], batch.kind[0]
    is_name = batch.name_mask[0]
    corrupted = bio.with_names(batch, [int(corrupt_with)]).tokens[:1]
    value_pos = torch.nonzero((kind == VALUE) & (batch.attribute[0] == a))[:, 0].tolist()
    return PatchingPair(
        clean=clean,
        corrupted=corrupted,
        target=ValueTarget(value_pos, clean[0, value_pos].tolist()),
        labels=tuple(token_labels(data.tokenizer, clean[0], kind)),
        corrupted_labels=tuple(token_labels(data.tokenizer, corrupted[0], kind)),
        name_positions=tuple(torch.nonzero(is_name)[:, 0].tolist()),
        individual=int(individual),
        corrupt_with=int(corrupt_with),
        attribute=attribute,
        value=population.describe(int(individual))[attribute],
    )


def activation_patching(
    model: HookedTransformer,
    clean: Int[Tensor, "1 pos"],
    corrupted: Int[Tensor, "1 pos"],
    target: ValueTarget,
    component: str = "resid_pre",
    labels=None,
    progress: bool = True,
) -> pd.DataFrame:
    """Patch one clean activation at a time into the corrupted run and score it.

    component in resid_pre | resid_mid | resid_post | attn_out | mlp_out -> one row per (layer,
    position): layer, position, token, score, normalized; per head (all positions) for
    q | k | v | z | pattern -> layer, head, score, normalized. normalized = (score - corrupted score)
    / (clean score - corrupted score): 1 = fully restored, 0 = no effect.
    """
    if component not in POSITION_COMPONENTS and component not in HEAD_COMPONENTS:
        raise ValueError(
            f"component={component!r} is unknown: allowed one of {', '.join([*POSITION_COMPONENTS, *HEAD_COMPONENTS])}"
        )
    clean, corrupted = _tokens("clean", clean, target), _tokens("corrupted", corrupted, target)
    if clean.shape != corrupted.shape:
        raise ValueError(
            f"corrupted has shape {tuple(corrupted.shape)}, clean {tuple(clean.shape)}: allowed equal shapes"
        )
    n_pos = clean.shape[1]
    if labels is not None and len(labels) != n_pos:
        raise ValueError(f"labels has {len(labels)} entries: allowed one per position ({n_pos})")
    names = {get_act_name(component, layer) for layer in range(model.cfg.n_layers)}
    with torch.no_grad():
        clean_logits, cache = model.run_with_cache(clean, names_filter=lambda n: n in names)
        clean_score, corrupted_score = target.score(clean_logits).item(), target.score(model(corrupted)).item()
        fn = POSITION_COMPONENTS.get(component) or HEAD_COMPONENTS[component]
        with _tl_progress(progress):
            result = fn(model, corrupted, cache, lambda logits: target.score(logits)).cpu()
    layer = np.repeat(np.arange(result.shape[0]), result.shape[1])
    inner = np.tile(np.arange(result.shape[1]), result.shape[0])
    score = result.flatten().numpy().astype(np.float64)
    normalized = (
        (score - corrupted_score) / (clean_score - corrupted_score)
        if clean_score != corrupted_score
        else np.full_like(score, np.nan)
    )
    if component in POSITION_COMPONENTS:
        tokens = labels if labels is not None else [str(t) for t in clean[0].tolist()]
        df = pd.DataFrame(
            {
                "layer": layer,
                "position": inner,
                "token": [tokens[p] for p in inner],
                "score": score,
                "normalized": normalized,
            }
        )
    else:
        df = pd.DataFrame({"layer": layer, "head": inner, "score": score, "normalized": normalized})
    df.attrs.update(component=component, clean_score=clean_score, corrupted_score=corrupted_score)
    return df


class _FixedPatterns(PatternSource):
    """Precomputed patterns of one input (a reference's patterns on the clean biography)."""

    def __init__(self, patterns: Patterns, tokens: Tensor, n_layers: int, n_heads: int):
        self._patterns, self._tokens, self.n_layers, self.n_heads = patterns, tokens, n_layers, n_heads

    def patterns(self, tokens, layers):
        if not torch.equal(tokens.to(self._tokens.device), self._tokens):
            raise ValueError("these fixed patterns were computed for another input")
        return {layer: self._patterns[layer] for layer in layers}


def pattern_patching_scores(
    model: HookedTransformer,
    reference_model: HookedTransformer,
    clean: Int[Tensor, "1 pos"],
    target: ValueTarget,
    progress: bool = True,
) -> pd.DataFrame:
    """Replace each layer's (head = -1) and each head's attention pattern by the reference's.

    Returns layer, head, score, delta (= score - the unpatched model's score).
    """
    from tqdm.auto import tqdm

    if reference_model.cfg.d_vocab != model.cfg.d_vocab:
        raise ValueError(
            f"reference_model has d_vocab={reference_model.cfg.d_vocab}, the model {model.cfg.d_vocab}: "
            "allowed models sharing one tokenizer"
        )
    clean = _tokens("clean", clean, target)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    rows = []
    with torch.no_grad():
        base = target.score(model(clean)).item()
        fixed = ReferencePatterns(reference_model).patterns(clean, list(range(reference_model.cfg.n_layers)))
        source = _FixedPatterns(fixed, clean, reference_model.cfg.n_layers, reference_model.cfg.n_heads)
        units = [(layer, head) for layer in range(n_layers) for head in (-1, *range(n_heads))]
        for layer, head in tqdm(units, desc="pattern patching", disable=not progress):
            with patch_patterns(model, source, layers=[layer], heads=None if head < 0 else [head]):
                score = target.score(model(clean)).item()
            rows.append({"layer": layer, "head": head, "score": score, "delta": score - base})
    df = pd.DataFrame(rows, columns=["layer", "head", "score", "delta"])
    df.attrs.update(component="pattern (reference)", clean_score=base)
    return df


def ablate(
    model: HookedTransformer,
    clean: Int[Tensor, "1 pos"],
    target: ValueTarget,
    kind: str = "zero",
    units: str = "heads",
    mean_batch: Batch | Tensor | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Ablate one unit at a time (each head's output z, or each MLP's output) and score.

    kind="zero" sets it to 0; kind="mean" to its mean over `mean_batch` (a `Batch`, padding
    excluded, or token ids), per position (positions `mean_batch` lacks use its overall mean).
    Returns layer, head (-1 for MLPs), score, delta (= score - the unablated score).
    """
    from tqdm.auto import tqdm

    if kind not in ("zero", "mean"):
        raise ValueError(f"kind={kind!r} is unknown: allowed zero | mean")
    if units not in ("heads", "mlps"):
        raise ValueError(f"units={units!r} is unknown: allowed heads | mlps")
    if kind == "mean" and mean_batch is None:
        raise ValueError("mean_batch is required for kind='mean' (the biographies to average activations over)")
    clean = _tokens("clean", clean, target)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    act = "z" if units == "heads" else "mlp_out"
    with torch.no_grad():
        means = position_means(model, mean_batch, act, clean.shape[1]) if kind == "mean" else None
        base = target.score(model(clean)).item()
        todo = [(layer, h) for layer in range(n_layers) for h in (range(n_heads) if units == "heads" else (-1,))]
        rows = []
        for layer, head in tqdm(todo, desc=f"{kind} ablation", disable=not progress):

            def hook(x, hook, layer=layer, head=head):
                fill = 0.0 if means is None else means[layer]
                if head < 0:
                    x[:] = fill
                else:
                    x[:, :, head] = fill if means is None else fill[:, :, head]
                return x

            logits = model.run_with_hooks(clean, fwd_hooks=[(get_act_name(act, layer), hook)])
            score = target.score(logits).item()
            rows.append({"layer": layer, "head": head, "score": score, "delta": score - base})
    df = pd.DataFrame(rows, columns=["layer", "head", "score", "delta"])
    df.attrs.update(component=f"{kind}-ablated {units}", clean_score=base)
    return df


def position_means(model, mean_batch, act: str, n_pos: int) -> dict[int, Tensor]:
    """Per layer: the activation averaged over the batch at each of `n_pos` positions."""
    if isinstance(mean_batch, Batch):
        tokens, mask = mean_batch.tokens, mean_batch.mask
    elif torch.is_tensor(mean_batch) and mean_batch.ndim == 2 and not mean_batch.is_floating_point():
        tokens, mask = mean_batch, torch.ones_like(mean_batch, dtype=torch.bool)
    else:
        raise ValueError("mean_batch: allowed a Batch or a [batch, pos] tensor of token ids")
    device = next(model.parameters()).device
    names = {get_act_name(act, layer) for layer in range(model.cfg.n_layers)}
    _, cache = model.run_with_cache(tokens.to(device), names_filter=lambda n: n in names)
    m = mask.to(device).float()
    out = {}
    for layer in range(model.cfg.n_layers):
        x = cache[get_act_name(act, layer)]  # [batch, pos, ...]
        w = m.reshape(*m.shape, *([1] * (x.ndim - 2)))
        per_pos = (x * w).sum(0) / w.sum(0).clamp(min=1)
        overall = (x * w).sum((0, 1)) / w.sum().clamp(min=1)
        seen = (m.sum(0) > 0)[:n_pos]
        full = overall.expand(n_pos, *overall.shape).clone()
        full[: len(seen)][seen] = per_pos[:n_pos][seen]
        out[layer] = full[None]
    return out


def _tokens(name: str, tokens: Tensor, target: ValueTarget) -> Tensor:
    if not torch.is_tensor(tokens) or tokens.is_floating_point() or tokens.ndim not in (1, 2):
        raise ValueError(f"{name}: allowed a [pos] or [1, pos] tensor of token ids")
    tokens = tokens[None] if tokens.ndim == 1 else tokens
    if max(target.positions) >= tokens.shape[1]:
        raise ValueError(f"target.positions reach {max(target.positions)}: allowed < {tokens.shape[1]} ({name} length)")
    return tokens


@contextlib.contextmanager
def _tl_progress(enabled: bool):
    """TransformerLens's patching loops always show tqdm bars; silence them when asked."""
    if enabled:
        yield
        return
    original = tl_patching.tqdm
    tl_patching.tqdm = lambda iterable, *args, **kwargs: iterable
    try:
        yield
    finally:
        tl_patching.tqdm = original
