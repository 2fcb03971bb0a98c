"""Fine-tuning on new individuals from a pre-trained checkpoint, with optional replay (docs/method.md §4.7).

A fine-tuning run is an ordinary run (metrics, checkpoints, resume) whose config carries a
`FinetuneConfig`: it starts from the weights of `base_run` at `base_step` with a fresh optimizer, a
constant learning rate, and batches about the first `n_new` new individuals (plus, with replay,
pre-training individuals at `replay_weight` each vs 1 per new individual; see
`workbench.data.samplers.finetune_sampler`). Its metrics log evaluates three groups: seen
(pre-training) individuals, held-out individuals (`heldout_`) and the new ones (`new_`).

Because populations are generated prefix-stably, raising `data.n_finetune` leaves the pre-training
and held-out individuals unchanged; `prepare_finetune` checks this with the manifest's population
fingerprint, so step 0 of a fine-tuning run evaluates exactly the base checkpoint.

    run = workbench.finetune("checkpoints/cpu-quick-seed0", 2000, n_new=600, replay_weight=1.0)

(`workbench.experiment.finetune` trains it; this module only defines and validates it.)
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from workbench.config import DataConfig, FinetuneConfig, RunConfig, assign, check_int
from workbench.naming import under_root
from workbench.run import Run, load_run
from workbench.training.checkpoint import load_weights
from workbench.training.loop import Callback
from workbench.training.rundir import RunDir

STEPS_FRACTION = 0.1  # default fine-tuning length: 10% of the base run's steps
N_EVALS = 40  # default number of evaluations over a fine-tuning run
N_CHECKPOINTS = 20  # checkpoint intervals over a fine-tuning run (21 checkpoints, step 0 included)
# data fields that a fine-tuning run may change relative to its base run
_FREE_DATA_FIELDS = ("n_finetune", "sampler")


def load_base(spec: FinetuneConfig) -> Run:
    """The base run of a fine-tuning spec, checked: a run directory with a checkpoint at base_step."""
    RunDir.require(spec.base_run, "finetune.base_run")
    base = load_run(spec.base_run)
    steps = base.checkpoint_steps
    if spec.base_step not in steps:
        raise ValueError(f"finetune.base_step={spec.base_step} has no checkpoint in {spec.base_run}: allowed {steps}")
    return base


def check_compatible(config: RunConfig, data, base: Run) -> None:
    """Same architecture, tokenizer and pre-training population as the base run, else ValueError."""
    spec = config.finetune
    if base.config.model != config.model:
        raise ValueError(
            f"model={config.model} differs from the architecture of finetune.base_run="
            f"{spec.base_run!r} ({base.config.model}): allowed the base run's model config"
        )
    if config.data.vocab_size != base.config.data.vocab_size or data.tokenizer != base.tokenizer:
        raise ValueError(
            f"finetune.base_run={spec.base_run!r} uses another tokenizer than this run "
            f"(data.vocab_size={config.data.vocab_size}, base: {base.config.data.vocab_size}): "
            "allowed the base run's tokenizer"
        )
    own, theirs = data.population.fingerprint("seen"), base.manifest["population_fingerprint"]
    if own != theirs:
        raise ValueError(
            f"finetune.base_run={spec.base_run!r} is a checkpoint from another population: the "
            f"pre-training individuals rebuilt from this config (seed={config.seed}, "
            f"data.n_individuals={config.data.n_individuals}) have fingerprint {own}, the base "
            f"run's {theirs}; allowed the base run's seed and population"
        )
    for f in dataclasses.fields(DataConfig):
        mine, base_value = getattr(config.data, f.name), getattr(base.config.data, f.name)
        if f.name not in _FREE_DATA_FIELDS and mine != base_value:
            raise ValueError(
                f"data.{f.name}={mine!r} differs from finetune.base_run={spec.base_run!r}: "
                f"allowed the base run's value {base_value!r}"
            )
    n_available = len(data.population.new)
    if spec.n_new > n_available:
        raise ValueError(
            f"finetune.n_new={spec.n_new} is out of range: allowed [1, {n_available}] (data.n_finetune new individuals)"
        )


def base_tokenizer(config: RunConfig):
    """The base run's saved tokenizer (validated against this run's in `check_compatible`)."""
    return RunDir.require(config.finetune.base_run, "finetune.base_run").tokenizer()


def prepare_finetune(config: RunConfig, data, model: torch.nn.Module, device: str, fresh: bool) -> list[Callback]:
    """Validate a fine-tuning run against its base run before any training; when `fresh`, load the
    base checkpoint's weights into `model` (a resumed run has its own checkpoint). No callbacks."""
    spec = config.finetune
    base = load_base(spec)
    check_compatible(config, data, base)
    if fresh:
        entry = base.manifest_entry(spec.base_step)
        load_weights(model, base.path / entry["weights"], entry["sha256"])
    return []


def default_checkpoint_steps(steps: int, eval_every: int, n: int = N_CHECKPOINTS) -> tuple[int, ...]:
    """~`n` evenly spaced intervals from step 0 to `steps`, each checkpoint on an evaluation step
    (so every checkpoint has a metrics row, and a resumed run adds no extra evaluation)."""
    grid = {min(steps, eval_every * round(steps * k / n / eval_every)) for k in range(n + 1)}
    return tuple(sorted(grid | {steps}))


def finetune_config(
    base_run: str | Path,
    base_step: int,
    n_new: int,
    replay_weight: float = 0.0,
    steps: int | None = None,
    lr: float = 3e-5,
    eval_every: int | None = None,
    seed: int | None = None,
) -> RunConfig:
    """The config of a fine-tuning run derived from its base run's config.

    Kept from the base: model, seed, population, tokenizer, batch size, optimizer, eval set size.
    Changed: data.n_finetune = max(base, n_new) (prefix-stable: pre-training and held-out
    individuals unchanged); a constant learning rate `lr` (the study's 3e-5 by default);
    `steps` defaults to 10% of the base run's steps; `eval_every` defaults to ~40 evaluations;
    ~21 evenly spaced checkpoints on evaluation steps (step 0 = the base checkpoint); no patching; preset
    "<base preset>-finetune". `seed` defaults to the base's; another seed rebuilds another
    population, which training rejects (kept to make that case explicit and testable).
    """
    spec = FinetuneConfig(base_run=str(base_run), base_step=base_step, n_new=n_new, replay_weight=replay_weight)
    b = load_base(spec).config
    p, d = b.data.pool_sizes, b.data
    check_int("finetune.n_new", n_new, 1, p.first_names**2 * p.last_names - d.n_individuals - d.n_heldout)
    steps = max(1, round(STEPS_FRACTION * b.train.steps)) if steps is None else steps
    eval_every = max(1, steps // N_EVALS) if eval_every is None and isinstance(steps, int) else eval_every
    for name, value in (("steps", steps), ("eval_every", eval_every)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}={value!r} is out of range: allowed an integer >= 1")
    return b.replace(
        preset=f"{b.preset}-finetune",
        seed=b.seed if seed is None else seed,
        patch=None,
        finetune=spec,
        data={"n_finetune": max(b.data.n_finetune, n_new)},
        train={
            "steps": steps,
            "lr": lr,
            "final_lr": min(b.train.final_lr, lr),
            "schedule": "constant",
            "eval_every": eval_every,
            "checkpoint_steps": default_checkpoint_steps(steps, eval_every),
            "n_checkpoints": 0,
        },
    )


def sweep_config(table: Mapping[str, Any], values: Mapping[str, Any]) -> RunConfig:
    """One point of a sweep whose base is a `[finetune]` table (base_run, base_step, steps, lr, eval_every): the
    table and the point's `finetune.*` values are `finetune_config`'s arguments (n_new, replay_weight, ...); the
    point's other values are assigned to the result, validated."""
    ft = dict(table) | {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("finetune.")}
    allowed = tuple(inspect.signature(finetune_config).parameters)
    unknown = sorted(set(ft) - set(allowed))
    if unknown:
        raise ValueError(f"finetune.{unknown[0]}: unknown in a fine-tuning sweep; allowed {allowed}")
    base = ft.pop("base_run")
    cfg = finetune_config(
        str(under_root(base)), ft.pop("base_step", 0), ft.pop("n_new", 1000), ft.pop("replay_weight", 0.0), **ft
    )
    return assign(cfg, {k: v for k, v in values.items() if not k.startswith("finetune.")})
