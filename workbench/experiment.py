"""The composition root: the only module that knows every feature of a run.

`training/` trains a run and knows no feature; each feature (a section of `RunConfig`) plugs in
here as a `Feature`: which config section switches it on, the saved tokenizer it reuses (if any),
and one `prepare(config, data, model, device, fresh)` that validates it against its inputs and
returns its callbacks, before any training compute and before the run directory is created.
A new feature (data attribution, retrieval, ...) adds one row to `FEATURES`. Sweeps plug in here too:
`plan_sweep` builds and validates every point of a spec (its base a preset, a fine-tuning base run or
a patching reference run), and `sweep` runs them on Ray with `train_or_resume` as the trial.

    run_dir = train(preset("tiny"), "checkpoints/tiny-seed0")
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

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd

from workbench import finetuning
from workbench.attribution import retrain
from workbench.config import RunConfig, override, preset
from workbench.patching import grid, training as patching
from workbench.run import Run, checkpoints_root, load_run
from workbench.sweeps import engine
from workbench.sweeps.spec import BASE_KEYS, Resources, SweepSpec, load_spec
from workbench.training import session
from workbench.training.loop import Callback
from workbench.training.rundir import RunDir


@dataclass(frozen=True)
class Feature:
    """A feature of a run: switched on by a config section, prepared before training."""

    name: str
    section: str  # the RunConfig field whose presence switches the feature on
    prepare: Callable[..., list[Callback]]  # (config, data, model, device, fresh) -> callbacks
    tokenizer: Callable[[RunConfig], Any] | None = None  # the saved tokenizer the run reuses

    def active(self, config: RunConfig) -> bool:
        return getattr(config, self.section) is not None


FEATURES: tuple[Feature, ...] = (
    Feature("fine-tuning", "finetune", finetuning.prepare_finetune, finetuning.base_tokenizer),
    Feature("attention patching", "patch", patching.prepare_patching, patching.reference_tokenizer),
    Feature("data edit (attribution retrain)", "edit", retrain.prepare_edit, retrain.edit_tokenizer),
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


def train(config: RunConfig, out: str | Path, progress: bool = True, callbacks: Iterable[Callback] = ()) -> RunDir:
    """Train a new run into `out`, with the features its config names."""
    if not isinstance(config, RunConfig):
        raise ValueError(f"config={type(config).__name__}: allowed a RunConfig (e.g. workbench.preset('tiny'))")
    RunDir(out).check_new()  # before a feature loads its reference's tokenizer (checked again at creation)
    return session.start(config, out, prepare, feature_tokenizer(config), progress, callbacks)


def resume(path: str | Path, progress: bool = True, callbacks: Iterable[Callback] = ()) -> RunDir:
    """Continue a stopped, failed or killed run exactly from its resume point."""
    return session.resume(path, prepare, progress, callbacks)


def train_or_resume(config: RunConfig, out: str | Path, progress: bool = True,
                    callbacks: Iterable[Callback] = ()) -> RunDir:
    """Resume the run in `out` when it holds this config (no-op when finished), else train it."""
    run = RunDir(out)
    if not run.exists():
        return train(config, out, progress, callbacks)
    run.check_resumable(config)
    return run if run.manifest()["status"] == "finished" else resume(out, progress, callbacks)


def finetune(base_run: str | Path, base_step: int, n_new: int, replay_weight: float = 0.0,
             out: str | Path | None = None, progress: bool = True, callbacks: Iterable[Callback] = (),
             **kw) -> Run:
    """Train a fine-tuning run (see `workbench.finetuning.finetune_config` for `kw`) and return it loaded;
    `out` defaults to `<base_run>-ft<n_new>-replay<w>`."""
    config = finetuning.finetune_config(base_run, base_step, n_new, replay_weight, **kw)
    out = finetuning.default_out(base_run, n_new, replay_weight) if out is None else Path(out)
    return load_run(train(config, out, progress, callbacks).path)


def patch_grid(reference_run: str | Path, reference_steps: Iterable[int], start_steps: Iterable[int] = (0,),
               out_root: str | Path | None = None, config_overrides: dict[str, Any] | None = None,
               progress: bool = True, address: str | None = None,
               resources: Resources = Resources()) -> pd.DataFrame:
    """Train (or finish) every patched run of a grid (`workbench.patching.grid`) as a sweep; its summary table.

    Every run is validated before any training; finished runs are skipped, unfinished ones resumed; a
    failed run raises (after the others finished) with its error.
    """
    reference, root, jobs = grid.plan_grid(reference_run, reference_steps, start_steps, out_root, config_overrides)
    trials = [engine.Trial(grid.run_name(j.reference_step, j.start_step), j.config, j.out,
                           {"patch.reference_step": j.reference_step, "patch.start_step": j.start_step})
              for j in jobs]
    status = engine.run_trials(root, trials, train_or_resume, resources, address, retry_failed=True, progress=progress)
    _raise_failed(status)
    return grid.grid_summary(reference, root, jobs)


# -- sweeps ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sweep:
    """A planned sweep: its spec, folder and validated trials (one run directory each)."""

    spec: SweepSpec
    root: Path
    trials: list[engine.Trial]


def _resolve(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else checkpoints_root() / p


def _assignments(values: dict[str, Any]) -> list[str]:
    def text(v: Any) -> str:
        if isinstance(v, (list, tuple)):
            return ",".join(text(x) for x in v)
        return str(v).lower() if isinstance(v, bool) else str(v)
    return [f"{k}={text(v)}" for k, v in values.items()]


def _point_config(spec: SweepSpec, values: dict[str, Any]) -> RunConfig:
    """The config of one point: the spec's base with the point's values applied and validated."""
    if spec.preset:
        return override(preset(spec.preset), _assignments(values))
    if spec.finetune is not None:
        ft = dict(spec.finetune) | {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("finetune.")}
        keys = (*BASE_KEYS["finetune"], "n_new", "replay_weight")  # the table's keys, and the grid's
        unknown = sorted(set(ft) - set(keys))
        if unknown:
            raise ValueError(f"finetune.{unknown[0]}: unknown in a fine-tuning sweep; allowed {keys}")
        base = ft.pop("base_run")
        cfg = finetuning.finetune_config(str(_resolve(base)), ft.pop("base_step", 0), ft.pop("n_new", 1000),
                                         ft.pop("replay_weight", 0.0), **ft)
        return override(cfg, _assignments({k: v for k, v in values.items() if not k.startswith("finetune.")}))
    if spec.edit is not None:
        attribution = _resolve(values.get("edit.attribution", spec.edit["attribution"]))  # a case may name its own
        cfg = override(retrain.retrain_config(attribution),
                       _assignments({k: v for k, v in values.items() if k != "edit.attribution"}))
        retrain.validate_edit(cfg)
        return cfg
    reference = load_run(RunDir.require(_resolve(spec.patch["reference_run"]), "patch.reference_run").path)
    steps = {k: values.get(f"patch.{k}", 0) for k in ("reference_step", "start_step")}
    cfg = grid.grid_config(reference, **steps)
    cfg = override(cfg, _assignments({k: v for k, v in values.items() if k not in
                                      ("patch.reference_step", "patch.start_step")}))
    patching.validate_patch(cfg)
    return cfg


def sweep_root(spec: str | Path | dict | SweepSpec) -> Path:
    """The folder of a sweep's run directories: `out`, else `<checkpoints root>/sweeps/<name>`."""
    spec = load_spec(spec)
    return (_resolve(spec.out) if spec.out else checkpoints_root() / "sweeps" / spec.name).absolute()


def plan_sweep(spec: str | Path | dict | SweepSpec) -> Sweep:
    """Every point of a sweep spec (a TOML file, a shipped spec name, a dict or a SweepSpec) with its
    config built and validated, and its run directory checked (absent, or holding the same config),
    before any trial starts: the first bad point is a ValueError naming it and the field."""
    spec = load_spec(spec)
    root = sweep_root(spec)
    trials = []
    for name, values in spec.points():
        try:
            config = _point_config(spec, values)
            RunDir(root / name).check_resumable(config)
        except ValueError as e:
            raise ValueError(f"sweep {spec.name}, point {name}: {e}") from e
        trials.append(engine.Trial(name, config, (root / name).absolute(), values))
    return Sweep(spec, root, trials)


def sweep(spec: str | Path | dict | SweepSpec, address: str | None = None, retry_failed: bool = False,
          progress: bool = True) -> pd.DataFrame:
    """Plan (validate every point), then train the points that need it on Ray (local, or the cluster at
    `address` / $RAY_ADDRESS): finished trials skipped, interrupted ones resumed, failed ones reported
    (and retried when `retry_failed`). The status table, one row per trial (`status`, `error`, `run`)."""
    planned = plan_sweep(spec)
    return engine.run_trials(planned.root, planned.trials, train_or_resume, planned.spec.resources, address,
                             retry_failed, progress, spec=planned.spec.to_dict())


def _raise_failed(status: pd.DataFrame) -> None:
    failed = status[status["status"] != "finished"]
    if len(failed):
        row = failed.iloc[0]
        raise RuntimeError(f"{len(failed)} run(s) did not finish; {row['trial']}: {row['status']} {row['error']}")


def attribute(run: str | Path | Run, layer: int | None = None, head: int | None = None, start: int | None = None,
              end: int | None = None, step: int = 0, probe: str = "attention", progress: bool = True, **kw):
    """Data attribution of a run's recall head (`workbench.attribution`): the influence of every training
    sequence of steps [start, end) (default: the run's plateau) on the head's probe at checkpoint `step`
    (default: the first at or after `end`). The head defaults to `find_recall_head`'s choice (within
    `layer` when given). `kw`: further `AttributionConfig` fields. Returns the saved `Attribution`."""
    from workbench.attribution.heads import find_recall_head
    from workbench.attribution.window import AttributionConfig, attribute as attribute_window

    if head is not None and layer is None:
        raise ValueError("head is given without layer: allowed both, or neither (the recall head is found)")
    run = run if isinstance(run, Run) else load_run(RunDir.require(run, "run").path)
    if start is None or end is None:
        phases = run.phases()
        if not phases.exists or phases.censored:
            raise ValueError(f"run {run.path} has {phases.describe()}: allowed a run whose plateau ends, or give "
                             f"start and end (the window of steps)")
        start = int(phases.plateau_start) if start is None else start
        end = int(phases.plateau_end) if end is None else end
    if head is None:
        found = find_recall_head(run, layers=None if layer is None else (layer,), progress=progress)
        layer, head = found.layer, found.head
    config = AttributionConfig(layer, head, start, end, step, probe, **kw)
    return attribute_window(run, config, progress)


def retrieve(run: str | Path | Run, m: int = 1, votes: int = 3, steps: Iterable[int] = (), source: str = "generated",
             progress: bool = True, **kw):
    """Test-time retrieval over the run's pre-training biographies at its checkpoints (`workbench.retrieval`):
    accuracy without retrieval, with the top-m BM25 documents, with m oracle documents and by a vote over
    `votes` one-document contexts, and each mode's compute multiplier. `source`: the datastore's documents
    (generated | trained); `kw`: further `RetrievalConfig` fields. Returns the saved `Retrieval`."""
    from workbench.retrieval.datastore import DatastoreConfig
    from workbench.retrieval.study import RetrievalConfig, retrieve as retrieve_study

    store = kw.pop("datastore", None) or DatastoreConfig(source=source)
    config = RetrievalConfig(m=m, votes=votes, steps=tuple(steps), datastore=store, **kw)
    run = run if isinstance(run, Run) else load_run(RunDir.require(run, "run").path)
    return retrieve_study(run, config, progress)


def reference_run(preset_name: str | None = None, seed: int = 0, progress: bool = True) -> Run:
    """The reference run of a preset ($WORKBENCH_PRESET, default cpu-quick) under `checkpoints_root()`,
    trained when absent and resumed when unfinished: what notebooks start from."""
    import os

    name = preset_name or os.environ.get("WORKBENCH_PRESET", "cpu-quick")
    cfg = preset(name).replace(seed=seed)
    path = checkpoints_root() / f"{name}-seed{seed}"
    if RunDir(path).exists():  # an existing reference run keeps its own config (e.g. an older preset)
        if RunDir(path).manifest()["status"] != "finished":
            resume(path, progress)
    else:
        train(cfg, path, progress)
    return Run(path)
