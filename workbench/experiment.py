"""The composition root: the only module that knows every feature of a run.

`training/` trains a run and knows no feature; each feature (a section of `RunConfig`) plugs in here as a
`Feature` row: which config section switches it on, the saved tokenizer it reuses (if any), one
`prepare(config, data, model, device, fresh)` that validates it against its inputs and returns its callbacks
(before any training compute and before the run directory is created), and, where a sweep spec may take the
feature's table as its base, the feature's own builder of a sweep point's config. A new feature adds one row
to `FEATURES` (docs/architecture.md).

    run = train(preset("tiny"), "checkpoints/tiny-seed0")
    resume("checkpoints/tiny-seed0")
    finetune("checkpoints/cpu-quick-seed0", 3500, n_new=600)
    patch_grid("checkpoints/cpu-quick-seed0", reference_steps=[0, 875, 3500])
    sweep("cpu/scaling")  # a shipped spec, or a TOML file
    attribute("checkpoints/sweeps/cpu-attribution/seed0")  # data attribution of the recall head
    retrieve("checkpoints/retrieval-cpu-k3-q0.5-seed0", m=2)  # retrieval across training, the multiplier

Packed training sequences (`data.packing`, which retrieval needs) are a data option, not a feature: the
data engine builds them and training is unchanged.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from workbench import finetuning
from workbench.attribution import retrain
from workbench.attribution.window import attribute
from workbench.config import RunConfig, assign, preset
from workbench.naming import default_run_path
from workbench.patching import grid, twin
from workbench.retrieval.study import retrieve
from workbench.run import Run, load_run
from workbench.sweeps import engine, plan
from workbench.sweeps.plan import Sweep, sweep_root
from workbench.sweeps.spec import Budget, Resources, SweepSpec
from workbench.training import session
from workbench.training.loop import Callback
from workbench.training.rundir import RunDir

__all__ = [
    "FEATURES",
    "Feature",
    "Sweep",
    "attribute",
    "budgeted",
    "finetune",
    "patch_grid",
    "plan_sweep",
    "reference_run",
    "resume",
    "retrieve",
    "sweep",
    "sweep_root",
    "train",
    "train_or_resume",
]


@dataclass(frozen=True)
class Feature:
    """A feature of a run: switched on by a config section, prepared before training."""

    name: str
    section: str  # the RunConfig field whose presence switches the feature on (and a sweep spec's base table)
    prepare: Callable[..., list[Callback]]  # (config, data, model, device, fresh) -> callbacks
    tokenizer: Callable[[RunConfig], Any] | None = None  # the saved tokenizer the run reuses
    sweep_config: Callable[[Mapping[str, Any], Mapping[str, Any]], RunConfig] | None = None  # (base table, values)

    def active(self, config: RunConfig) -> bool:
        return getattr(config, self.section) is not None


FEATURES: tuple[Feature, ...] = (
    Feature("fine-tuning", "finetune", finetuning.prepare_finetune, finetuning.base_tokenizer, finetuning.sweep_config),
    Feature("attention patching", "patch", twin.prepare_patching, twin.reference_tokenizer, grid.sweep_config),
    Feature(
        "data edit (attribution retrain)", "edit", retrain.prepare_edit, retrain.edit_tokenizer, retrain.sweep_config
    ),
)


def active_features(config: RunConfig) -> list[Feature]:
    return [f for f in FEATURES if f.active(config)]


def prepare(config: RunConfig, data, model, device: str, fresh: bool) -> list[Callback]:
    """Every active feature's callbacks (each validated against the run being built)."""
    return [cb for f in active_features(config) for cb in f.prepare(config, data, model, device, fresh)]


def feature_tokenizer(config: RunConfig):
    """The saved tokenizer an active feature reuses (a reference or base run's), else None."""
    for f in active_features(config):
        if f.tokenizer is not None:
            return f.tokenizer(config)
    return None


def train(config: RunConfig, out: str | Path, progress: bool = True, callbacks: Iterable[Callback] = ()) -> Run:
    """Train a new run into `out`, with the features its config names."""
    if not isinstance(config, RunConfig):
        raise ValueError(f"config={type(config).__name__}: allowed a RunConfig (e.g. workbench.preset('tiny'))")
    RunDir(out).check_new()  # before a feature loads its reference's tokenizer (checked again at creation)
    return load_run(session.start(config, out, prepare, feature_tokenizer(config), progress, callbacks).path)


def resume(
    path: str | Path, progress: bool = True, callbacks: Iterable[Callback] = (), steps: int | None = None
) -> Run:
    """Continue a stopped, failed or killed run exactly from its resume point; with `steps`, a constant-lr run
    (finished or not) is extended to that many steps first (`training.rundir.extension`)."""
    return load_run(session.resume(path, prepare, progress, callbacks, steps).path)


def train_or_resume(
    config: RunConfig,
    out: str | Path | None = None,
    progress: bool = True,
    callbacks: Iterable[Callback] = (),
    keep_config: bool = False,
) -> Run:
    """The one way to train or finish a run: train `config` into `out` (default `naming.default_run_path`) when
    nothing is there; else finish the run there (skipped when finished, resumed when not). An existing run must
    hold `config`, unless `keep_config` (a reference run keeps its own config, e.g. that of an older preset), or be
    the same constant-lr run with fewer steps, which is then extended (how a sweep lengthens a trial's budget)."""
    out = default_run_path(config) if out is None else Path(out)
    run = RunDir(out)
    if not run.exists():
        return train(config, out, progress, callbacks)
    if not keep_config:
        run.check_resumable(config)  # the same config, or the same run with fewer steps (then extended)
        if run.config().train.steps < config.train.steps:
            return resume(out, progress, callbacks, steps=config.train.steps)
    return load_run(out) if run.manifest()["status"] == "finished" else resume(out, progress, callbacks)


def budgeted(
    config: RunConfig,
    out: str | Path,
    progress: bool = True,
    callbacks: Iterable[Callback] = (),
    budget: Budget | None = None,
) -> Run:
    """A sweep trial with an adaptive budget (`sweeps.spec.Budget`): train or finish the run (one extended beyond
    `config` before keeps its own length), then extend it by the budget's factor until it has escaped its plateau
    and memorised, or reached the budget's maximum; `out`'s folder name is the trial's (`Budget.for_run`)."""
    budget = None if budget is None else budget.for_run(Path(out).name)
    existing = RunDir(out)
    if existing.exists() and existing.config().train.steps > config.train.steps:
        existing.check_resumable(config, longer=True)
        run = load_run(out) if existing.manifest()["status"] == "finished" else resume(out, progress, callbacks)
    else:
        run = train_or_resume(config, out, progress, callbacks)
    while True:
        phases = run.phases(n_boot=0)
        end = 0.0 if not phases.exists else math.inf if phases.censored else phases.plateau_end
        if budget is None or budget.done(run.config.train.steps, functools.partial(_final_accuracy, run, budget), end):
            return run
        run = resume(out, progress, callbacks, steps=budget.next_steps(run.config.train.steps))


def _final_accuracy(run: Run, budget: Budget) -> float:
    """What a budget decides on: the last checkpoint on `budget.eval_size` fresh biographies, else the last
    evaluation."""
    if budget.eval_size:
        return float(run.seen_accuracy(budget.eval_size).mean())
    return float(run.metrics.dropna(subset=["attribute_accuracy"])["attribute_accuracy"].iloc[-1])


def reference_run(preset_name: str | None = None, seed: int = 0, progress: bool = True) -> Run:
    """The reference run of a preset ($WORKBENCH_PRESET, default cpu-quick) under the checkpoints root, trained
    when absent and resumed when unfinished (an existing one keeps its own config): what notebooks start from."""
    import os

    config = preset(preset_name or os.environ.get("WORKBENCH_PRESET", "cpu-quick")).replace(seed=seed)
    return train_or_resume(config, progress=progress, keep_config=True)


def finetune(
    base_run: str | Path,
    base_step: int,
    n_new: int,
    replay_weight: float = 0.0,
    out: str | Path | None = None,
    progress: bool = True,
    callbacks: Iterable[Callback] = (),
    **kw,
) -> Run:
    """Train a fine-tuning run (see `workbench.finetuning.finetune_config` for `kw`); `out` defaults to
    `<base_run>-ft<n_new>-replay<w>` (`naming.default_run_path`)."""
    config = finetuning.finetune_config(base_run, base_step, n_new, replay_weight, **kw)
    return train(config, default_run_path(config) if out is None else out, progress, callbacks)


def patch_grid(
    reference_run: str | Path,
    reference_steps: Iterable[int],
    start_steps: Iterable[int] = (0,),
    out_root: str | Path | None = None,
    config_overrides: dict[str, Any] | None = None,
    progress: bool = True,
    address: str | None = None,
    resources: Resources = Resources(),
) -> pd.DataFrame:
    """Train (or finish) every patched run of a grid (`workbench.patching.grid`) as a sweep; its summary table.

    Every run is validated before any training; finished runs are skipped, unfinished ones resumed; a
    failed run raises (after the others finished) with its error.
    """
    reference, root, jobs = grid.plan_grid(reference_run, reference_steps, start_steps, out_root, config_overrides)
    trials = [
        engine.Trial(
            j.out.name, j.config, j.out, {"patch.reference_step": j.reference_step, "patch.start_step": j.start_step}
        )
        for j in jobs
    ]
    status = engine.run_trials(root, trials, train_or_resume, resources, address, retry_failed=True, progress=progress)
    failed = status[status["status"] != "finished"]
    if len(failed):
        row = failed.iloc[0]
        raise RuntimeError(f"{len(failed)} run(s) did not finish; {row['trial']}: {row['status']} {row['error']}")
    return grid.grid_summary(reference, root, jobs)


def point_config(spec: SweepSpec, values: Mapping[str, Any]) -> RunConfig:
    """The config of one sweep point: the spec's preset with the values assigned, or its base feature's builder."""
    if spec.preset:
        return assign(preset(spec.preset), values)
    feature = next(f for f in FEATURES if f.sweep_config is not None and getattr(spec, f.section, None) is not None)
    return feature.sweep_config(getattr(spec, feature.section), values)


def plan_sweep(spec: str | Path | dict | SweepSpec) -> Sweep:
    """Every point of a sweep spec built and validated, its run directory checked, before any trial starts
    (`workbench.sweeps.plan`)."""
    return plan.plan(spec, point_config)


def sweep(
    spec: str | Path | dict | SweepSpec, address: str | None = None, retry_failed: bool = False, progress: bool = True
) -> pd.DataFrame:
    """Plan (validate every point), then train the points that need it on Ray (local, or the cluster at
    `address` / $RAY_ADDRESS): finished trials skipped, interrupted ones resumed, failed ones reported
    (and retried when `retry_failed`). The status table, one row per trial (`status`, `error`, `run`)."""
    planned = plan_sweep(spec)
    budget = planned.spec.budget
    trial = train_or_resume if budget is None else functools.partial(budgeted, budget=budget)
    return engine.run_trials(
        planned.root,
        planned.trials,
        trial,
        planned.spec.resources,
        address,
        retry_failed,
        progress,
        spec=planned.spec.to_dict(),
    )
