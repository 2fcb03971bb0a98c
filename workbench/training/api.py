"""Start, resume and continue runs: everything is validated before the first forward pass."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

from workbench.config import RunConfig
from workbench.data.corpus import BiographyData
from workbench.model import build_model
from workbench.training.callbacks import Checkpointer, Evaluator, Progress
from workbench.training.checkpoint import load_optimizer, load_weights, study_checkpoint_steps
from workbench.training.loop import Callback, TrainState, make_optimizer, resolve_device, train_loop
from workbench.training.rundir import RunDir


def feature_tokenizer(config: RunConfig):
    """Patched and fine-tuning runs use their reference / base run's saved tokenizer."""
    for field, path in (("finetune.base_run", config.finetune and config.finetune.base_run),
                        ("patch.reference_run", config.patch and config.patch.reference_run)):
        if path:
            return RunDir.require(path, field).tokenizer()
    return None


def feature_callbacks(config: RunConfig, data: BiographyData, model: torch.nn.Module, device: str,
                      fresh: bool) -> list[Callback]:
    """Validate a run's features (patching, fine-tuning) and return their callbacks, before any
    training compute. `fresh`: a new run (fine-tuning then loads its base weights)."""
    callbacks: list[Callback] = []
    if config.finetune is not None:
        from workbench.finetune import prepare_finetune

        callbacks += prepare_finetune(config, data, model, fresh)
    if config.patch is not None:
        from workbench.patching.training import prepare_patching

        callbacks += prepare_patching(config, data, model, device)
    return callbacks


def context_length(config: RunConfig, data: BiographyData) -> int:
    """model.n_ctx, or the longest possible biography when 0; a shorter context is an error."""
    longest = data.max_length
    if config.model.n_ctx and config.model.n_ctx < longest:
        raise ValueError(f"model.n_ctx={config.model.n_ctx} is shorter than the longest biography "
                         f"({longest} tokens): allowed n_ctx >= {longest}, or 0 to fit it")
    return config.model.n_ctx or longest


def checkpoint_schedule(config: RunConfig) -> tuple[int, ...]:
    t = config.train
    return tuple(s for s in t.checkpoint_steps if s <= t.steps) or study_checkpoint_steps(t.steps)


def setup(config: RunConfig, tokenizer=None) -> tuple[BiographyData, torch.nn.Module, str]:
    """Data, a freshly initialised model (seeded by config.seed) and the device, all validated."""
    device = resolve_device(config.train.device)
    data = BiographyData(config, tokenizer=tokenizer)
    model = build_model(config.model, data.tokenizer.vocab_size, context_length(config, data), config.seed, device)
    return data, model, device


def train(config: RunConfig, out: str | Path, progress: bool = True, callbacks: Iterable[Callback] = ()) -> RunDir:
    """Train a new run into `out` (which must not hold a run yet)."""
    run = RunDir(out)
    if run.exists():
        raise ValueError(f"run directory {run.path} already holds a run; use --resume or another --out")
    data, model, device = setup(config, tokenizer=feature_tokenizer(config))
    extra = feature_callbacks(config, data, model, device, fresh=True)
    run.create(config, data.tokenizer, data.world.fingerprint("seen"))
    state = TrainState(model, make_optimizer(model, config.train), data, config)
    return _run(run, state, device, progress, [*extra, *callbacks])


def resume(path: str | Path, progress: bool = True, callbacks: Iterable[Callback] = ()) -> RunDir:
    """Continue a stopped or killed run from its newest checkpoint; exact on CPU."""
    run = RunDir(path)
    config = run.config()
    manifest = run.manifest()
    steps = run.checkpoint_steps()
    if not steps:
        raise ValueError(f"run {run.path} has no checkpoint to resume from")
    data, model, device = setup(config, tokenizer=run.tokenizer())
    if data.world.fingerprint("seen") != manifest["population_fingerprint"]:
        raise ValueError(f"run {run.path}: the population rebuilt from config.json differs from the manifest's")
    last = steps[-1]
    entry = manifest["checkpoints"][str(last)]
    load_weights(model, run.path / entry["weights"], entry["sha256"])
    extra = feature_callbacks(config, data, model, device, fresh=False)
    state = TrainState(model, make_optimizer(model, config.train), data, config, step=last)
    if entry.get("optimizer"):
        load_optimizer(state.optimizer, run.path / entry["optimizer"], entry["optimizer_sha256"])
        _restore_loop_state(state, run.path / entry["optimizer"])
    if manifest["status"] == "finished" and last >= config.train.steps:
        return run
    return _run(run, state, device, progress, [*extra, *callbacks])


def _restore_loop_state(state: TrainState, path: Path) -> None:
    import json

    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        loop = json.loads((f.metadata() or {}).get("loop", "{}"))
    state.loss_sum, state.loss_count = loop.get("loss_sum", 0.0), loop.get("loss_count", 0)


def _run(run: RunDir, state: TrainState, device: str, progress: bool, extra: list[Callback]) -> RunDir:
    callbacks = [*extra, Evaluator(run, device), Checkpointer(run, checkpoint_schedule(state.config)),
                 Progress(progress, desc=run.path.name)]
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    if device == "cpu":  # multithreaded CPU reductions are otherwise not bit-reproducible (exact resume)
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        train_loop(state, callbacks, device)
    except BaseException:
        if run.exists():
            run.update_manifest(status="failed" if state.step < state.config.train.steps else "finished")
        raise
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
    return run
