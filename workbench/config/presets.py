"""The presets: named RunConfigs from the study's model and run down to seconds-long test runs.

Each preset's comment says what it is for and what was measured to choose it (analysis/NOTES.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from workbench.config.schema import DataConfig, ModelConfig, PackingConfig, PoolSizes, RunConfig, TrainConfig


def _presets() -> dict[str, RunConfig]:
    sweep_data = DataConfig(
        n_individuals=2000,
        n_heldout=200,
        n_finetune=2000,
        vocab_size=4096,
        attributes=("birth_city", "university", "major"),
        pool_sizes=PoolSizes(
            first_names=200, last_names=200, cities=200, universities=100, majors=50, companies=100, years=50
        ),
    )
    sweep_model = ModelConfig(n_layers=2, d_model=128, n_heads=4, d_head=32, d_mlp=512)
    sweep_train = TrainConfig(
        steps=1500, batch_size=32, lr=3e-3, schedule="constant", eval_every=25, eval_size=64, n_checkpoints=4
    )
    small_pools = PoolSizes(
        first_names=60, last_names=60, cities=40, universities=20, majors=20, companies=30, years=20
    )
    return {
        # the study's model and run (docs/method.md §3): 8 layers, d_model 512, 8 heads x 64, MLP 2048
        "paper": RunConfig(preset="paper"),
        # the three phases in ~15 min on 2 CPU cores; d128 so memorisation after the plateau is fast
        # (at d64 it took as long as the plateau; see analysis/NOTES.md)
        "cpu-quick": RunConfig(
            preset="cpu-quick",
            data=DataConfig(
                n_individuals=1500,
                n_heldout=500,
                n_finetune=1000,
                vocab_size=4096,
                pool_sizes=PoolSizes(
                    first_names=200, last_names=200, cities=200, universities=100, majors=50, companies=100, years=50
                ),
            ),
            model=ModelConfig(n_layers=4, d_model=128, n_heads=4, d_head=32, d_mlp=512),
            train=TrainConfig(steps=3500, batch_size=32, lr=3e-3, eval_every=50, eval_size=128),
        ),
        # one sweep trial in 1-7 min on one CPU core (analysis/NOTES.md, "cpu-sweep"): 3 attributes (41 tokens per
        # biography), 2 layers; a constant learning rate, so a trial's length (set per N in a sweep) does not
        # change its dynamics before its end. The plateau shows from N ~ 2000 on (at 1000 memorisation
        # starts before the loss has flattened at the baseline).
        "cpu-sweep": RunConfig(preset="cpu-sweep", data=sweep_data, model=sweep_model, train=sweep_train),
        # retrieval of pre-training data (docs/method.md §6.2): cpu-sweep with 3 biographies per training sequence,
        # half of them repeating an individual, so the model has a reason to read facts from its context and
        # room for 2 documents before a query; 16 checkpoints across the phases (analysis/retrieval_cpu.py)
        "cpu-packed": RunConfig(
            preset="cpu-packed",
            data=dataclasses.replace(sweep_data, packing=PackingConfig(k=3, q_same=0.5)),
            model=sweep_model,
            train=dataclasses.replace(sweep_train, n_checkpoints=15, eval_size=128),
        ),
        # reading from the context (docs/method.md §6.2): cpu-packed's world with context-only individuals (70% of
        # sequences hold one of them twice among 3 biographies, at random slots, beside a seen individual: only
        # reading, by name, predicts the second mention) and 4 layers; a first setting, not yet tuned (NOTES)
        "cpu-reading": RunConfig(
            preset="cpu-reading",
            data=dataclasses.replace(sweep_data, packing=PackingConfig(k=3, q_ctx=0.7, n_context=70_000)),
            model=dataclasses.replace(sweep_model, n_layers=4),
            train=dataclasses.replace(sweep_train, steps=3000, n_checkpoints=15, eval_size=128),
        ),
        # for tests: seconds on a CPU
        "tiny": RunConfig(
            preset="tiny",
            data=DataConfig(n_individuals=64, n_heldout=32, n_finetune=32, vocab_size=2048, pool_sizes=small_pools),
            model=ModelConfig(n_layers=2, d_model=32, n_heads=2, d_head=16, d_mlp=64),
            train=TrainConfig(steps=40, batch_size=16, lr=3e-3, eval_every=10, eval_size=32, n_checkpoints=4),
        ),
    }


_PRESETS = _presets()
PRESETS: tuple[str, ...] = tuple(_PRESETS)


def preset(name: str, **sections: Any) -> RunConfig:
    """A preset RunConfig, optionally with sections replaced: preset("tiny", train={"steps": 5})."""
    if name not in _PRESETS:
        raise ValueError(f"preset={name!r} is unknown: allowed {', '.join(PRESETS)}")
    return _PRESETS[name].replace(**sections)
