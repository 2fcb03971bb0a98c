"""The training loop. It knows nothing about the model beyond `model(tokens) -> logits`.

Everything else (evaluation, checkpoints, progress, attention patching, probes) plugs in as a
`Callback`, so new features need no edits here. Step s means "after s optimizer updates"; the
update from s to s+1 uses `data.train_batch(s)`, a pure function of (seed, s).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from workbench.config import TrainConfig
from workbench.metrics import next_token_loss


class Callback:
    """Hooks into the loop; `state.step` is the number of updates done when each is called."""

    def on_train_start(self, state: "TrainState") -> None: ...
    def on_step_start(self, state: "TrainState") -> None: ...
    def on_step_end(self, state: "TrainState") -> None: ...
    def on_train_end(self, state: "TrainState") -> None: ...


@dataclass
class TrainState:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    data: Any  # BiographyData
    config: Any  # RunConfig
    step: int = 0
    loss: float = math.nan
    loss_sum: float = 0.0  # training loss summed since the last evaluation (exact on resume)
    loss_count: int = 0
    last_metrics: dict = field(default_factory=dict)
    stop: bool = False


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW (docs/method.md §3); no weight decay on biases and LayerNorm parameters (standard practice)."""
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Cosine from `lr` to `final_lr` over the run without warm-up, or constant."""
    if cfg.schedule == "constant":
        return cfg.lr
    return cfg.final_lr + 0.5 * (cfg.lr - cfg.final_lr) * (1 + math.cos(math.pi * step / cfg.steps))


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device='cuda' but no CUDA device is available: allowed auto | cpu")
    return name


def train_loop(state: TrainState, callbacks: list[Callback], device: str,
               loss_fn: Callable = next_token_loss) -> TrainState:
    """Run updates from `state.step` to `config.train.steps`, calling the callbacks around each."""
    cfg = state.config.train
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext())
    state.model.train()
    for cb in callbacks:
        cb.on_train_start(state)
    while state.step < cfg.steps and not state.stop:
        for cb in callbacks:
            cb.on_step_start(state)
        batch = state.data.train_batch(state.step).to(device)
        for group in state.optimizer.param_groups:
            group["lr"] = learning_rate(cfg, state.step)
        with autocast:
            logits = state.model(batch.tokens)
        loss = loss_fn(logits, batch)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.grad_clip)
        state.optimizer.step()
        state.step += 1
        state.loss = loss.item()
        state.loss_sum += state.loss
        state.loss_count += 1
        for cb in callbacks:
            cb.on_step_end(state)
    for cb in callbacks:
        cb.on_train_end(state)
    return state
