"""Start and continue runs, knowing no feature: features arrive as a `prepare` function.

Everything is validated before the first forward pass: the run directory (`RunDir.check_new`), the
data and model (`setup`), and the features (`prepare`, given by the composition root
`workbench.experiment`), and only then is the run directory created. While a run trains, its
directory is locked (one writer at a time), and SIGINT / SIGTERM stop it gracefully: the loop ends
after the current step, the state is saved as the run's resume point, the status becomes `stopped`
and `Stopped` is raised. A kill -9 at any moment leaves a run that `resume` continues exactly
(from its newest checkpoint, or from the start when it has none yet).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from workbench.config import RunConfig
from workbench.data.biography_data import BiographyData
from workbench.model import build_model, context_length
from workbench.training.callbacks import Checkpointer, Evaluator, Progress
from workbench.training.checkpoint import load_optimizer, load_weights, scheduled_steps
from workbench.training.loop import (
    Callback,
    TrainState,
    check_compile,
    configure_device,
    make_optimizer,
    resolve_device,
    resolve_precision,
    train_loop,
)
from workbench.training.rundir import RunDir, extension
from workbench.training.stopping import Stopped, stop_on_signals

# prepare(config, data, model, device, fresh) -> callbacks; `fresh`: a new run (not a resumed one)
Prepare = Callable[[RunConfig, BiographyData, torch.nn.Module, str, bool], list[Callback]]


def setup(config: RunConfig, tokenizer=None) -> tuple[BiographyData, torch.nn.Module, str]:
    """Data, a freshly initialised model (seeded by config.seed) and the device, all validated."""
    device = resolve_device(config.train.device)
    resolve_precision(config.train, device)  # bad precision or compile for this device: refused before any work
    check_compile(config.train, device)
    configure_device(config.train, device)
    data = BiographyData(config, tokenizer=tokenizer)
    model = build_model(
        config.model, data.tokenizer.vocab_size, context_length(config.model, data.max_length), config.seed, device
    )
    return data, model, device


def _no_features(config, data, model, device, fresh) -> list[Callback]:
    return []


def start(
    config: RunConfig,
    out: str | Path,
    prepare: Prepare = _no_features,
    tokenizer=None,
    progress: bool = True,
    callbacks: Iterable[Callback] = (),
) -> RunDir:
    """Train a new run into `out` (absent, empty, or left incomplete by a kill during its creation)."""
    run = RunDir(out)
    run.check_new()
    data, model, device = setup(config, tokenizer)
    extra = prepare(config, data, model, device, True)
    with run.lock():
        run.create(config, data.tokenizer, data.population.fingerprint())
        state = TrainState(model, make_optimizer(model, config.train, device), data, config)
        _run(run, state, device, progress, [*extra, *callbacks])
    return run


def resume(
    path: str | Path,
    prepare: Prepare = _no_features,
    progress: bool = True,
    callbacks: Iterable[Callback] = (),
    steps: int | None = None,
) -> RunDir:
    """Continue a stopped, failed or killed run from its resume point; exact on CPU. With `steps` (more than the
    run's), a finished or unfinished constant-lr run is first extended to that many steps (`extension`),
    recorded in its manifest."""
    run = RunDir.require(path, "--resume")
    config = run.config()
    if steps is not None and steps != config.train.steps:
        config = extension(config, steps)  # refused before the lock, the data or the model
    with run.lock():
        if config != run.config():
            run.extend(config)
        point = run.resume_point()
        if run.manifest()["status"] == "finished" and point is not None and point["step"] >= config.train.steps:
            return run  # nothing to do: no data or model is built
        data, model, device = setup(config, tokenizer=run.tokenizer())
        run.check_population(data.population)
        if point is not None:
            load_weights(model, run.path / point["weights"], point["sha256"])
        extra = prepare(config, data, model, device, point is None)
        state = TrainState(
            model, make_optimizer(model, config.train, device), data, config, step=0 if point is None else point["step"]
        )
        if point is not None and point.get("optimizer"):
            load_optimizer(state.optimizer, run.path / point["optimizer"], point["optimizer_sha256"])
            _restore_loop_state(state, run.path / point["optimizer"])
        _run(run, state, device, progress, [*extra, *callbacks])
    return run


def _restore_loop_state(state: TrainState, path: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        loop = json.loads((f.metadata() or {}).get("loop", "{}"))
    state.loss_sum, state.loss_count = loop.get("loss_sum", 0.0), loop.get("loss_count", 0)


def _run(run: RunDir, state: TrainState, device: str, progress: bool, extra: list[Callback]) -> None:
    cfg = state.config.train
    checkpointer = Checkpointer(run, scheduled_steps(cfg), optimizer_every=cfg.optimizer_every)
    callbacks = [
        *extra,
        Evaluator(run, device, resolve_precision(cfg, device)),
        checkpointer,
        Progress(progress, desc=run.path.name),
    ]
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    if device == "cpu":  # multithreaded CPU reductions are otherwise not bit-reproducible (exact resume)
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with stop_on_signals(state) as received:
            train_loop(state, callbacks, device, n_ctx=getattr(getattr(state.model, "cfg", None), "n_ctx", 0))
    except BaseException:
        checkpointer.drain(quiet=True)  # a checkpoint being written in the background is completed first
        checkpointer.close()
        if run.exists():
            run.update_manifest(status="failed" if state.step < state.config.train.steps else "finished")
        raise
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
    if "signum" in received and state.step < state.config.train.steps:
        raise Stopped(run.path, state.step, received["signum"])
