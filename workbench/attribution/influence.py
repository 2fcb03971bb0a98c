"""EK-FAC influence of training sequences on a head's measure (`ekfac.py`), and an exact reference.

The influence of a training sequence s on the measure P (mean over the measure set) is the change of P when
s is up-weighted, through the head's parameters θ only (the `HeadView` modules the measure tracks):

    influence(s) = - ∇P(θ)ᵀ (F + λI)⁻¹ ∇L_s(θ)

with L_s the sequence's summed next-token loss and F the Fisher of the training loss over the window.
Sign: a gradient step on s changes θ by -η ∇L_s, which changes P by -η ∇Pᵀ ∇L_s, so influence > 0 means
training on s raises the measure. (The EK-FAC score is ∇Pᵀ (F+λ)⁻¹ ∇L_s, hence the minus sign.)

`ekfac_influence` approximates F by EK-FAC per module (the usual damping λ: 0.1 × the mean
eigenvalue of each module's block) and can split each score over the sequence's positions: the
per-token score at p is the part that flows through the tracked modules' input at p. `exact_influence`
builds F from explicit per-sequence gradients (one block over all tracked parameters, λ = 0.1 × the mean
eigenvalue) and solves it exactly, through the Woodbury identity when there are fewer fitting sequences than
parameters (`damped_solve`): the reference EK-FAC is checked against (`compare`).
The Fisher is "sampled" (labels drawn from the model: the true Fisher, as in docs/method.md §6.1) or
"empirical" (the data's labels).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from workbench.config import check
from workbench.data.batch import Batch

FISHERS = ("sampled", "empirical")
DAMPING_SCALE = 0.1  # λ = 0.1 × mean eigenvalue, the usual heuristic (EK-FAC's and the exact reference's)


def _check(measure, train: Batch, measure_batch: Batch, damping, fisher: str) -> None:
    check(fisher in FISHERS, "fisher", " | ".join(FISHERS), fisher)
    check(damping is None or damping > 0, "damping", "None (the heuristic) or a number > 0", damping)
    check(len(train) > 0, "train", "at least one sequence", len(train))
    check(len(measure_batch) > 0, "measure_batch", "at least one sequence", len(measure_batch))
    check(bool(measure.modules), "measure.modules", "at least one of qk | v | o", measure.modules)


def ekfac_influence(
    view,
    measure,
    train: Batch,
    measure_batch: Batch,
    damping: float | None = None,
    fisher: str = "sampled",
    fit: Batch | None = None,
    fit_size: int | None = None,
    per_token: bool = False,
    batch_size: int = 32,
    progress: bool = False,
    seed: int = 0,
):
    """EK-FAC influence [n_train] of each training sequence on the measure's mean over `measure_batch`
    (`workbench.attribution.ekfac`); with `per_token`, also its split over positions [n_train, pos]. The factors
    are fitted on `fit` (default: `train`), or on a seeded subset of `fit_size` of its sequences."""
    from workbench.attribution.ekfac import fit_factors, inverse_hvp, module_grads, scores

    _check(measure, train, measure_batch, damping, fisher)
    view = copy.deepcopy(view)
    modules = tuple(measure.modules)
    fit = fit_subset(train if fit is None else fit, fit_size, seed)
    factors = fit_factors(view, modules, fit, fisher == "sampled", batch_size, seed, progress)
    ihvp = inverse_hvp(factors, module_grads(view, modules, measure(view, measure_batch).mean()), damping)
    raw = -scores(view, modules, ihvp, train, batch_size, progress)  # [n_train, pos]
    if per_token:
        return raw.sum(1).numpy(), raw.numpy()
    return raw.sum(1).numpy()


def damped_solve(
    g_fit: Float[Tensor, "n p"], lam: float, v: Float[Tensor, " p *m"], solver: str = "auto"
) -> Float[Tensor, " p *m"]:
    """(F + λI)⁻¹ v for the Fisher F = GᵀG / n of the n per-sequence gradients G [n, p], exactly.

    `woodbury` solves the n × n system (F + λI)⁻¹ = (1/λ)(I - Gᵀ(nλI + GGᵀ)⁻¹G) in O(n²p) time and O(np)
    memory, which is what one head needs (p up to ~10⁵, n a few thousand); `direct` builds the p × p matrix;
    `auto` takes the smaller system."""
    check(solver in ("auto", "woodbury", "direct"), "solver", "auto | woodbury | direct", solver)
    check(lam > 0, "damping", "a number > 0", lam)
    n, p = g_fit.shape
    if solver == "direct" or (solver == "auto" and p <= n):
        return torch.linalg.solve(g_fit.T @ g_fit / n + lam * torch.eye(p, dtype=g_fit.dtype, device=g_fit.device), v)
    inner = g_fit @ g_fit.T + n * lam * torch.eye(n, dtype=g_fit.dtype, device=g_fit.device)
    return (v - g_fit.T @ torch.linalg.solve(inner, g_fit @ v)) / lam


def mean_eigenvalue(g_fit: Float[Tensor, "n p"]) -> float:
    """The mean eigenvalue of F = GᵀG / n, trace(F) / p, without forming F."""
    n, p = g_fit.shape
    return float((g_fit * g_fit).sum() / (n * p))


def fit_subset(fit: Batch, fit_size: int | None, seed: int) -> Batch:
    """The sequences the Fisher is fitted on: all of `fit`, or a seeded subset of `fit_size` of them (in order)."""
    if fit_size is None or fit_size >= len(fit):
        return fit
    rows = torch.randperm(len(fit), generator=torch.Generator().manual_seed(seed))[:fit_size]
    return fit[rows.sort().values]


def exact_influence(
    view,
    measure,
    train: Batch,
    measure_batch: Batch,
    damping: float | None = None,
    fisher: str = "sampled",
    fit: Batch | None = None,
    fit_size: int | None = None,
    per_token: bool = False,
    batch_size: int = 32,
    progress: bool = False,
    seed: int = 0,
    solver: str = "auto",
):
    """The influence [n_train] (and with `per_token` its split over positions [n_train, pos]) with the Fisher of
    the tracked parameters built from the per-sequence gradients of `fit` (default: `train`; or a seeded subset of
    `fit_size` of it) and solved exactly (`damped_solve`; λ = 0.1 × the mean eigenvalue by default, which is also
    the MDA rule λᵢ + 0.1·mean(λ)). Memory: the n_fit × p gradients in float64 (`exact_memory`)."""
    from workbench.attribution.ekfac import module_grads, scores, sequence_grads

    _check(measure, train, measure_batch, damping, fisher)
    view = copy.deepcopy(view)
    modules = tuple(measure.modules)
    fit = fit_subset(train if fit is None else fit, fit_size, seed)
    g_fit = sequence_grads(view, modules, fit, fisher == "sampled", batch_size, seed, progress)  # [n_fit, p]
    lam = damping if damping is not None else DAMPING_SCALE * mean_eigenvalue(g_fit)
    v = module_grads(view, modules, measure(view, measure_batch).mean())
    solved = damped_solve(g_fit.to(v[modules[0]].device), lam, torch.cat([v[n].flatten() for n in modules]), solver)
    del g_fit
    ihvp, k = {}, 0
    for n in modules:  # back to one [d_out, d_in (+1)] matrix per module
        ihvp[n] = solved[k : k + v[n].numel()].view_as(v[n])
        k += v[n].numel()
    raw = -scores(view, modules, ihvp, train, batch_size, progress)  # [n_train, pos]
    if per_token:
        return raw.sum(1).numpy(), raw.numpy()
    return raw.sum(1).numpy()


def exact_memory(view, modules, n_fit: int) -> int:
    """Bytes the exact influence holds at its peak: the n_fit × p per-sequence gradients and the n_fit × n_fit
    Woodbury system, in float64 (p: the tracked parameters, biases included)."""
    p = sum(m.numel() for n in modules for m in getattr(view, n).parameters())
    return 8 * (n_fit * p + 2 * n_fit * min(n_fit, p))


INFLUENCES = {"exact": exact_influence, "ekfac": ekfac_influence}  # AttributionConfig.estimator


def compare(a, b, top: float = 0.1) -> dict[str, float]:
    """How well two influence vectors agree: Spearman rank correlation (Pearson's of the ranks, ties averaged),
    and the overlap of their top `top` fraction (share of a's most influential sequences that are among b's)."""
    import pandas as pd

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    check(a.shape == b.shape and a.ndim == 1, "a, b", "two vectors of the same length", (a.shape, b.shape))
    check(0 < top <= 1, "top", "a fraction in (0, 1]", top)
    k = max(1, int(round(top * len(a))))
    overlap = len(set(np.argsort(-a)[:k]) & set(np.argsort(-b)[:k])) / k
    spearman = pd.Series(a).rank().corr(pd.Series(b).rank())  # pandas' method="spearman" needs scipy, not a dependency
    return {"spearman": float(spearman), "top_overlap": float(overlap)}


def separation(influence, planted, share: float | None = None) -> dict[str, float]:
    """How well influence picks out a planted subset (the positive control): AUROC (the probability that a planted
    sequence outranks another, ties counting half; Mann-Whitney through average ranks) and the precision of the top
    `share` (default: the planted share) against the base rate, with their ratio (lift); and group_z, the planted
    set's summed influence against random sets of its size, in standard errors (without replacement): what
    first-order influence predicts for removing the whole set rather than how it ranks single sequences (> 0: the
    set raises the measure more than a random set; a set can stand out as a group while its members rank at
    chance when single scores are noisy)."""
    import pandas as pd

    x, planted = np.asarray(influence, dtype=float), np.asarray(planted, dtype=bool)
    check(x.shape == planted.shape and x.ndim == 1, "influence, planted", "two vectors of the same length", x.shape)
    n_p, n = int(planted.sum()), len(x)
    check(0 < n_p < n, "planted", "some planted and some other sequences", n_p)
    share = n_p / n if share is None else share
    check(0 < share < 1, "share", "a fraction in (0, 1)", share)
    ranks = pd.Series(x).rank().to_numpy()
    auroc = (ranks[planted].sum() - n_p * (n_p + 1) / 2) / (n_p * (n - n_p))
    k = max(1, int(round(share * n)))
    precision = float(planted[np.argsort(-x, kind="stable")[:k]].mean())
    spread = x.std(ddof=1) * np.sqrt(n_p * (1 - n_p / n))  # the sd of a random n_p-subset's sum
    group_z = (x[planted].sum() - n_p * x.mean()) / spread if spread > 0 else 0.0
    return {
        "auroc": float(auroc),
        "top_precision": precision,
        "base_rate": n_p / n,
        "lift": precision * n / n_p,
        "group_z": float(group_z),
    }
