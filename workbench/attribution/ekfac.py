"""EK-FAC influence for the `nn.Linear` modules of a `HeadView` (George et al. 2018; Grosse et al. 2023), written
for one head: a few hundred lines of kronfluence reduced to what the workbench uses, with no dependency beyond torch.

For a tracked Linear module with input a_t (a 1 appended when it has a bias) and output gradient g_t at token t, a
sequence's gradient is G = Σ_t g_t a_tᵀ. EK-FAC approximates the Fisher F = E_seq[vec(G) vec(G)ᵀ] per module by
the eigenbases of the token covariances A = E_tok[a aᵀ] and S = E_tok[g gᵀ], with eigenvalues corrected to the
sequence gradients' second moments in that basis, Λ_ij = E_seq[(Q_Sᵀ G Q_A)_ij²]. Then

    (F + λI)⁻¹ V = Q_S [(Q_Sᵀ V Q_A) / (Λ + λ)] Q_Aᵀ,     λ = 0.1 × mean(Λ) per module unless given,

and a training sequence's score against the measure's gradient V is ⟨(F + λI)⁻¹ V, G⟩ = Σ_t g_tᵀ [(F+λI)⁻¹V] a_t,
which splits over the sequence's positions (the per-token scores). Padding positions are left out of A and S.
The Fisher's gradients come from labels sampled from the model ("sampled", the true Fisher) or the data's labels
("empirical"); the scores always use the data's labels.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from workbench.data.batch import Batch
from workbench.data.kinds import PAD


def sequence_loss(
    logits: Float[Tensor, "batch pos vocab"],
    batch: Batch,
    sample: bool = False,
    generator: torch.Generator | None = None,
) -> Float[Tensor, " batch"]:
    """Per sequence, the summed next-token loss over non-padding targets; with `sample`, the targets are
    drawn from the model's own distribution (for the true Fisher)."""
    logits = logits[:, :-1].float()
    targets = batch.tokens[:, 1:].to(logits.device)
    if sample:
        with torch.no_grad():
            probs = torch.softmax(logits, -1).flatten(0, 1)
            targets = torch.multinomial(probs, 1, generator=generator).view(targets.shape)
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view(targets.shape)
    return (loss * (batch.kind[:, 1:] != PAD).to(loss.device)).sum(1)


class _Taps:
    """Forward hooks on the tracked modules: each forward records the module's input (with a 1 for its bias) and
    registers a hook that records its output's gradient, both [batch, pos, features]."""

    def __init__(self, modules: dict[str, torch.nn.Linear]):
        self.modules, self.inputs, self.grads, self._handles = modules, {}, {}, []

    @contextmanager
    def on(self) -> Iterator["_Taps"]:
        def tap(name):
            def hook(module, args, output):
                x = args[0].detach()
                if module.bias is not None:
                    x = torch.cat([x, torch.ones_like(x[..., :1])], -1)
                self.inputs[name] = x
                output.register_hook(lambda g: self.grads.__setitem__(name, g.detach()))

            return hook

        self._handles = [m.register_forward_hook(tap(n)) for n, m in self.modules.items()]
        try:
            yield self
        finally:
            for h in self._handles:
                h.remove()


def _tokens(view, batch: Batch, taps: _Taps, sample: bool, generator) -> torch.Tensor:
    """Forward and backward one batch (per-sequence losses summed); the taps hold inputs and output gradients.
    Returns the real-token mask [batch, pos]."""
    device = next(view.parameters()).device
    with taps.on():
        logits = view(batch.tokens.to(device))
        sequence_loss(logits, batch, sample, generator).sum().backward()
    return (batch.kind != PAD).to(device)


def _batches(batch: Batch, size: int, desc: str, progress: bool):
    return tqdm(range(0, len(batch), size), desc=desc, disable=not progress, leave=False)


def fit_factors(
    view,
    modules: tuple[str, ...],
    fit: Batch,
    sample: bool,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, dict[str, torch.Tensor]]:
    """Per module: the eigenbases Q_A, Q_S of the token covariances and the corrected eigenvalues Λ [d_out, d_in]."""
    taps = _Taps({n: getattr(view, n) for n in modules})
    generator = torch.Generator(device=next(view.parameters()).device).manual_seed(seed)
    cov = {n: [0.0, 0.0, 0] for n in modules}  # A sum, S sum, tokens
    for i in _batches(fit, batch_size, "EK-FAC covariances", progress):
        real = _tokens(view, fit[i : i + batch_size], taps, sample, generator)
        for n in modules:
            a, g = taps.inputs[n][real].double(), taps.grads[n][real].double()  # [tokens, d]
            cov[n][0], cov[n][1], cov[n][2] = cov[n][0] + a.T @ a, cov[n][1] + g.T @ g, cov[n][2] + len(a)
    factors = {}
    for n, (a_sum, s_sum, count) in cov.items():
        factors[n] = {
            "q_a": torch.linalg.eigh(a_sum / count)[1],
            "q_s": torch.linalg.eigh(s_sum / count)[1],
            "lam": 0.0,
        }
    generator.manual_seed(seed + 1)
    passes = _sequence_gradients(view, modules, fit, sample, batch_size, generator, "EK-FAC eigenvalues", progress)
    for per_seq in passes:
        for n, f in factors.items():
            f["lam"] = f["lam"] + ((f["q_s"].T @ per_seq[n] @ f["q_a"]) ** 2).sum(0)
    for f in factors.values():
        f["lam"] = f["lam"] / len(fit)
    return factors


def _sequence_gradients(view, modules, batch: Batch, sample: bool, batch_size: int, generator, desc, progress):
    """Per batch of sequences, each module's per-sequence gradients {module: [batch, d_out, d_in (+1)]}: the
    tracked modules act per token, so a sequence's weight gradient is Σ_t g_t a_tᵀ (padding left out)."""
    taps = _Taps({n: getattr(view, n) for n in modules})
    for i in _batches(batch, batch_size, desc, progress):
        real = _tokens(view, batch[i : i + batch_size], taps, sample, generator)[..., None]
        yield {
            n: torch.einsum("btg,bta->bga", taps.grads[n].double() * real, taps.inputs[n].double() * real)
            for n in modules
        }


def sequence_grads(
    view, modules: tuple[str, ...], batch: Batch, sample: bool, batch_size: int = 32, seed: int = 0, progress=False
) -> Float[Tensor, "n p"]:
    """Each sequence's gradient of its summed loss (labels sampled from the model with `sample`) over the tracked
    modules, flattened module by module in `module_grads`' layout: [n, p] float64, on the CPU."""
    generator = torch.Generator(device=next(view.parameters()).device).manual_seed(seed)
    out = torch.empty(len(batch), sum(_width(getattr(view, n)) for n in modules), dtype=torch.float64)
    i = 0
    for per_seq in _sequence_gradients(view, modules, batch, sample, batch_size, generator, "gradients", progress):
        flat = torch.cat([per_seq[n].flatten(1) for n in modules], 1)
        out[i : i + len(flat)] = flat.cpu()
        i += len(flat)
    return out


def _width(module: torch.nn.Linear) -> int:
    return module.out_features * (module.in_features + (module.bias is not None))


def inverse_hvp(factors: dict, grads: dict[str, torch.Tensor], damping: float | None) -> dict[str, torch.Tensor]:
    """(F + λI)⁻¹ V per module in the corrected eigenbasis (module docstring); `grads` [d_out, d_in] per module."""
    out = {}
    for n, v in grads.items():
        f = factors[n]
        lam = damping if damping is not None else 0.1 * float(f["lam"].mean())
        out[n] = f["q_s"] @ ((f["q_s"].T @ v @ f["q_a"]) / (f["lam"] + lam)) @ f["q_a"].T
    return out


def module_grads(view, modules: tuple[str, ...], value: torch.Tensor) -> dict[str, torch.Tensor]:
    """The gradient of `value` per module as one [d_out, d_in (+1 for the bias)] matrix."""
    params = [(n, getattr(view, n)) for n in modules]
    flat = [p for _, m in params for p in ((m.weight, m.bias) if m.bias is not None else (m.weight,))]
    grads, out, k = torch.autograd.grad(value, flat), {}, 0
    for n, m in params:
        w = grads[k].double()
        k += 1
        if m.bias is not None:
            w = torch.cat([w, grads[k].double()[:, None]], 1)
            k += 1
        out[n] = w
    return out


def scores(
    view,
    modules: tuple[str, ...],
    ihvp: dict[str, torch.Tensor],
    train: Batch,
    batch_size: int = 32,
    progress: bool = False,
) -> torch.Tensor:
    """Per training sequence and position, Σ_modules g_tᵀ [(F+λI)⁻¹V] a_t (the data's labels): [n_train, pos]."""
    taps = _Taps({n: getattr(view, n) for n in modules})
    out = torch.zeros(len(train), train.tokens.shape[1], dtype=torch.float64)
    for i in _batches(train, batch_size, "influence scores", progress):
        real = _tokens(view, train[i : i + batch_size], taps, False, None)
        per_token = sum(
            torch.einsum("btg,ga,bta->bt", taps.grads[n].double(), h, taps.inputs[n].double()) for n, h in ihvp.items()
        )
        out[i : i + batch_size, : per_token.shape[1]] = (per_token * real).cpu()
    return out
