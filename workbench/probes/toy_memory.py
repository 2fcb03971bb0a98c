"""The toy associative memory (docs/method.md §4.8): forgetting and replay in a one-hidden-layer ReLU MLP.

Random unit-norm keys in R^d_key are mapped to one of n_values classes by an MLP with d_hidden ReLU
units, pre-trained (cross-entropy, Adam, minibatches) on n_keys pairs until it memorises them, then
fine-tuned on n_new NEW pairs. Replay mixes pre-training pairs into the fine-tuning batches at weight
`replay_weight` per old pair against 1 per new pair (as the biography fine-tuning sampler does), so a
fine-tuning example is an old pair with probability w * n_keys / (w * n_keys + n_new). Accuracy on the
old and the new pairs is tracked throughout. The optimizer is reset when fine-tuning starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor, nn
from tqdm.auto import tqdm

from workbench.config import check_int, check_number

COLUMNS = ["phase", "step", "old_accuracy", "new_accuracy"]


@dataclass(frozen=True)
class ToyMemoryConfig:
    """Sizes, optimisation and the replay weight of one toy-memory experiment.

    Defaults memorise the 8,192 pre-training pairs (old accuracy 0.999 after 3,000 steps, ~8-15 s on
    one CPU core; numbers printed by analysis/toy_memory.py). `eval_every` is in steps of either phase.
    """

    n_keys: int = 8192
    d_key: int = 64
    n_values: int = 30
    d_hidden: int = 256
    n_new: int = 1024
    replay_weight: float = 0.0
    pretrain_steps: int = 3000
    finetune_steps: int = 1000
    lr: float = 1e-2
    finetune_lr: float = 3e-3
    batch_size: int = 512
    eval_every: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        for name, lo in (
            ("n_keys", 1),
            ("d_key", 1),
            ("n_values", 2),
            ("d_hidden", 1),
            ("n_new", 1),
            ("pretrain_steps", 0),
            ("finetune_steps", 0),
            ("batch_size", 1),
            ("eval_every", 1),
            ("seed", 0),
        ):
            v = getattr(self, name)
            check_int(f"ToyMemoryConfig.{name}", v, lo)
        check_number("ToyMemoryConfig.replay_weight", self.replay_weight, 0.0)
        for name in ("lr", "finetune_lr"):
            v = getattr(self, name)
            check_number(f"ToyMemoryConfig.{name}", v, 0.0, 1.0, lo_open=True)

    @property
    def replay_fraction(self) -> float:
        """Probability that a fine-tuning example is an old (pre-training) pair."""
        old = self.replay_weight * self.n_keys
        return old / (old + self.n_new)


@dataclass
class ToyPairs:
    """Pre-training (old) and fine-tuning (new) key-value pairs."""

    old_keys: Float[Tensor, "n_keys d_key"]
    old_values: Int[Tensor, " n_keys"]
    new_keys: Float[Tensor, "n_new d_key"]
    new_values: Int[Tensor, " n_new"]


def make_pairs(cfg: ToyMemoryConfig) -> ToyPairs:
    """Random unit-norm keys with uniformly random values; a pure function of cfg.seed."""
    g = torch.Generator().manual_seed(cfg.seed)
    keys = torch.randn(cfg.n_keys + cfg.n_new, cfg.d_key, generator=g)
    keys = keys / keys.norm(dim=1, keepdim=True)
    values = torch.randint(cfg.n_values, (cfg.n_keys + cfg.n_new,), generator=g)
    n = cfg.n_keys
    return ToyPairs(keys[:n], values[:n], keys[n:], values[n:])


def make_memory(cfg: ToyMemoryConfig) -> nn.Sequential:
    """Key -> ReLU hidden layer -> value logits; initialised from cfg.seed (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + 1)
        return nn.Sequential(nn.Linear(cfg.d_key, cfg.d_hidden), nn.ReLU(), nn.Linear(cfg.d_hidden, cfg.n_values))


@torch.no_grad()
def accuracy(model: nn.Module, keys: Float[Tensor, "n d_key"], values: Int[Tensor, " n"]) -> float:
    return (model(keys).argmax(-1) == values).float().mean().item()


def _train(
    model: nn.Module,
    pairs: ToyPairs,
    cfg: ToyMemoryConfig,
    phase: str,
    steps: int,
    lr: float,
    p_old: float,
    g: torch.Generator,
    rows: list[dict],
    bar,
) -> None:
    """Adam on minibatches: each example is an old pair with probability p_old, else a new pair."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    keys = torch.cat([pairs.old_keys, pairs.new_keys])
    values = torch.cat([pairs.old_values, pairs.new_values])
    n_old, n_new = len(pairs.old_keys), len(pairs.new_keys)

    def log(step: int) -> None:
        rows.append(
            {
                "phase": phase,
                "step": step,
                "old_accuracy": accuracy(model, pairs.old_keys, pairs.old_values),
                "new_accuracy": accuracy(model, pairs.new_keys, pairs.new_values),
            }
        )

    log(0)
    for step in range(1, steps + 1):
        b = cfg.batch_size
        from_old = torch.rand(b, generator=g) < p_old
        idx = torch.where(
            from_old, torch.randint(n_old, (b,), generator=g), n_old + torch.randint(n_new, (b,), generator=g)
        )
        loss = nn.functional.cross_entropy(model(keys[idx]), values[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % cfg.eval_every == 0 or step == steps:
            log(step)
        bar.update(1)


def run_toy_memory(cfg: ToyMemoryConfig, progress: bool = False) -> pd.DataFrame:
    """Pre-train on the old pairs, then fine-tune on the new ones (with replay); one row per evaluation.

    Columns: phase (pretrain | finetune), step (within the phase), old_accuracy, new_accuracy.
    """
    pairs = make_pairs(cfg)
    model = make_memory(cfg)
    g = torch.Generator().manual_seed(cfg.seed + 2)
    rows: list[dict] = []
    with tqdm(total=cfg.pretrain_steps + cfg.finetune_steps, disable=not progress, desc="toy memory") as bar:
        _train(model, pairs, cfg, "pretrain", cfg.pretrain_steps, cfg.lr, 1.0, g, rows, bar)
        _train(model, pairs, cfg, "finetune", cfg.finetune_steps, cfg.finetune_lr, cfg.replay_fraction, g, rows, bar)
    return pd.DataFrame(rows, columns=COLUMNS)
