"""Linear probes: is an individual's attribute value linearly decodable from the name representation?

For each layer l, the residual stream at the last name token of the first sentence (see
`probes.sites`) is read before MLP l (`blocks.{l}.hook_resid_mid`) and after it
(`blocks.{l}.hook_resid_post`). A multinomial logistic regression (torch, L-BFGS, L2 penalty on the
weights, standardised inputs) is fitted on some individuals and tested on OTHER individuals of the
same population. It can only generalise if the value is written along directions shared across
individuals, which is what the probe tests. Birth dates are probed per component
(birth_date.year / .month / .day, see `probe_targets`). With position="value" the probe reads, for
each attribute, the token just before its value in its own sentence instead (the position that
predicts the value's first token): a contrast showing where along depth the value becomes explicit.

chance = max(1 / #classes, the test accuracy of always answering the most frequent training class).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from workbench.data.biography_data import BiographyData
from workbench.over_checkpoints import bound_params, over_checkpoints
from workbench.probes.sites import activations_at, biographies, check_layers, probe_targets, sample_individuals

SITES = ("resid_mid", "resid_post")  # before / after the layer's MLP
POSITIONS = ("name", "value")
COLUMNS = ["layer", "site", "attribute", "accuracy", "chance"]


@dataclass
class LinearProbe:
    """A fitted multinomial logistic regression on standardised inputs."""

    weight: Float[Tensor, "d n_classes"]
    bias: Float[Tensor, " n_classes"]
    mean: Float[Tensor, " d"]
    std: Float[Tensor, " d"]

    def logits(self, x: Float[Tensor, "n d"]) -> Float[Tensor, "n n_classes"]:
        return ((x - self.mean) / self.std) @ self.weight + self.bias

    def predict(self, x: Float[Tensor, "n d"]) -> Int[Tensor, " n"]:
        return self.logits(x).argmax(-1)

    def accuracy(self, x: Float[Tensor, "n d"], y: Int[Tensor, " n"]) -> float:
        return (self.predict(x) == y).float().mean().item()


def fit_probe(
    x: Float[Tensor, "n d"], y: Int[Tensor, " n"], n_classes: int, weight_decay: float = 1e-3, steps: int = 200
) -> LinearProbe:
    """Minimise mean cross-entropy + weight_decay * ||W||^2 / 2 with L-BFGS (deterministic: zero init)."""
    x, y = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
    if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[0] == 0:
        raise ValueError(f"x must be [n, d] and y [n] with n >= 1; got {tuple(x.shape)} and {tuple(y.shape)}")
    if not isinstance(n_classes, int) or n_classes < 2 or int(y.max()) >= n_classes or int(y.min()) < 0:
        raise ValueError(f"n_classes={n_classes!r} is out of range: allowed an integer >= max(2, max(y) + 1)")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay={weight_decay!r} is out of range: allowed [0, inf)")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r} is out of range: allowed an integer >= 1")
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp(min=1e-6)
    z = (x - mean) / std
    w = torch.zeros(x.shape[1], n_classes, requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1.0,
        max_iter=steps,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
    )

    def closure() -> Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ w + b, y) + 0.5 * weight_decay * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return LinearProbe(w.detach(), b.detach(), mean, std)


def chance_level(y_train: Int[Tensor, " n"], y_test: Int[Tensor, " m"], n_classes: int) -> float:
    """max(1 / n_classes, test accuracy of the majority training class)."""
    majority = torch.as_tensor(y_train).bincount().argmax()
    return max(1.0 / n_classes, (torch.as_tensor(y_test) == majority).float().mean().item())


def probe_scores(x_train, y_train, x_test, y_test, n_classes: int, **fit_kwargs) -> dict[str, float]:
    """Fit on (x_train, y_train), score on (x_test, y_test): accuracy and chance level."""
    probe = fit_probe(x_train, y_train, n_classes, **fit_kwargs)
    return {
        "accuracy": probe.accuracy(torch.as_tensor(x_test, dtype=torch.float32), torch.as_tensor(y_test)),
        "chance": chance_level(y_train, y_test, n_classes),
    }


def probe_accuracy(
    model: HookedTransformer,
    data: BiographyData,
    n_train: int = 512,
    n_test: int = 128,
    seed: int = 0,
    group: str = "seen",
    layers: list[int] | None = None,
    weight_decay: float = 1e-3,
    fit_steps: int = 200,
    position: str = "name",
    progress: bool = False,
) -> pd.DataFrame:
    """Held-out-individual accuracy of a probe per (layer, site, attribute), with the chance level.

    The first n_train of n_train + n_test distinct individuals of `group` train the probes (L-BFGS,
    `fit_steps` iterations, `weight_decay`); the other n_test are the test set.
    """
    for name, v in (("n_train", n_train), ("n_test", n_test)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}={v!r} is out of range: allowed an integer >= 1")
    if position not in POSITIONS:
        raise ValueError(f"position={position!r} is out of range: allowed {' | '.join(POSITIONS)}")
    layers = check_layers(layers, model.cfg.n_layers)
    ids = sample_individuals(data, group, n_train + n_test, seed)
    rng = np.random.default_rng([seed, 51])
    ids = rng.permutation(ids)
    batch = biographies(data, ids, seed)
    hooks = [f"blocks.{l}.hook_{s}" for l in layers for s in SITES]
    attributes = data.config.data.attributes
    if position == "name":
        positions = batch.first_name_end[:, None].expand(-1, len(attributes))
    else:
        positions = batch.value_query_positions(len(attributes))
    acts = activations_at(model, batch, positions, hooks)  # [n, attribute, d_model] per hook
    targets = probe_targets(data, ids)
    rows = []
    bar = tqdm(total=len(hooks) * len(targets), disable=not progress, desc="probes")
    for l in layers:
        for s in SITES:
            for attr, (y, n_classes) in targets.items():
                x = acts[f"blocks.{l}.hook_{s}"][:, attributes.index(attr.split(".")[0])]
                y = torch.as_tensor(y)
                sc = probe_scores(
                    x[:n_train],
                    y[:n_train],
                    x[n_train:],
                    y[n_train:],
                    n_classes,
                    weight_decay=weight_decay,
                    steps=fit_steps,
                )
                rows.append({"layer": l, "site": s, "attribute": attr, **sc})
                bar.update(1)
    bar.close()
    return pd.DataFrame(rows, columns=COLUMNS)


def probes_over_checkpoints(run, steps: list[int] | None = None, progress: bool = True, **kwargs) -> pd.DataFrame:
    """`probe_accuracy` at checkpoints of a `Run` (default: all), with a step column first.
    Cached in <run>/analysis/probes.csv (`over_checkpoints`, params: probe_accuracy's arguments)."""
    params = bound_params(probe_accuracy, kwargs)

    def compute(step, models):
        return probe_accuracy(models(step), run.data, **kwargs)

    return over_checkpoints(run, "probes", compute, steps, params, progress)[["step", *COLUMNS]]
