"""Retrieval across training: accuracy with and without retrieval per checkpoint, and the multiplier.

`retrieve(run, RetrievalConfig(...))` evaluates each chosen checkpoint of a run on its own evaluation sets
(seen individuals on evaluation templates; held-out individuals) in every mode of `workbench.retrieval.augment`,
then converts each mode's accuracy on seen individuals into a compute multiplier against the run's own
baseline curve (its metrics). Everything is saved under `<run>/retrieval/<name>/` (items, summary,
multipliers, retrieval.json with the config and sha256 of each table), written to a temporary folder and
renamed, and reloaded instead of recomputed.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.atomic import atomic_write_csv, atomic_write_json, read_json, saved_or_computed, sha256
from workbench.config import check, check_indices, check_int
from workbench.retrieval.augment import MODES, augmented_items, check_room
from workbench.retrieval.datastore import DatastoreConfig, build_datastore
from workbench.retrieval.multiplier import compute_multiplier, multiplier_interval

GROUPS = ("seen", "heldout")


@dataclass(frozen=True)
class RetrievalConfig:
    """What to evaluate: checkpoints, modes, documents per context, votes, the datastore."""

    name: str = "default"
    steps: tuple[int, ...] = ()  # checkpoint steps; () = every checkpoint of the run
    modes: tuple[str, ...] = MODES
    m: int = 1  # documents before the query (bm25, oracle)
    votes: int = 3  # self-consistency: contexts of one document each
    eval_size: int = 0  # biographies per group; 0 = train.eval_size (the run's own evaluation set)
    groups: tuple[str, ...] = GROUPS
    datastore: DatastoreConfig = field(default_factory=DatastoreConfig)
    n_boot: int = 500  # bootstrap resamples of the evaluation biographies (intervals)
    chunk: int = 64  # contexts per forward pass
    # the baseline curve of the multiplier: "" = the run's own metrics; else a longer run of the same config (more
    # train.steps, a constant learning rate), so accuracies past the run's own end still get an equivalent step
    baseline_run: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.datastore, dict):
            object.__setattr__(self, "datastore", DatastoreConfig(**self.datastore))
        for name in ("steps", "modes", "groups"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        check(
            isinstance(self.name, str) and self.name.replace("-", "").replace("_", "").isalnum(),
            "retrieval.name",
            "a name of letters, digits, - and _",
            self.name,
        )
        check_indices("retrieval.steps", self.steps)
        check(
            len(self.modes) > 0 and all(m in MODES for m in self.modes) and len(set(self.modes)) == len(self.modes),
            "retrieval.modes",
            f"distinct modes from {MODES}",
            self.modes,
        )
        check(
            len(self.groups) > 0
            and all(g in GROUPS for g in self.groups)
            and len(set(self.groups)) == len(self.groups),
            "retrieval.groups",
            f"distinct groups from {GROUPS}",
            self.groups,
        )
        check_int("retrieval.m", self.m, 1, 64)
        check_int("retrieval.votes", self.votes, 1 if "vote" in self.modes else 0, 64)
        check_int("retrieval.eval_size", self.eval_size, 0, 100_000)
        check_int("retrieval.n_boot", self.n_boot, 0, 100_000)
        check_int("retrieval.chunk", self.chunk, 1, 4096)
        check(
            isinstance(self.baseline_run, str),
            "retrieval.baseline_run",
            "a run directory, or '' (the run itself)",
            self.baseline_run,
        )
        check(isinstance(self.datastore, DatastoreConfig), "retrieval.datastore", "a DatastoreConfig", self.datastore)


def resolve(run, config: RetrievalConfig) -> RetrievalConfig:
    """The config checked against the run (steps, context room, groups, datastore), `steps` filled in:
    a ValueError naming the field before any compute."""
    steps = run.checkpoint_steps
    for s in config.steps:
        check(s in steps, "retrieval.steps[]", f"a checkpoint step of the run: {steps}", s)
    n_ctx = run.config.model.n_ctx or run.data.max_length
    check_room(n_ctx, run.data.biographer.max_length(), config.m, config.votes)
    if "vote" in config.modes:
        check_room(n_ctx, run.data.biographer.max_length(), 1, config.votes, "retrieval.votes")
    groups = run.data.eval_groups
    for g in config.groups:
        check(g in groups, "retrieval.groups[]", f"a group this run evaluates: {groups}", g)
    if config.datastore.source == "trained":
        check_int("datastore.up_to_step", config.datastore.up_to_step, 0, run.config.train.steps)
    check("attribute_accuracy" in run.metrics, "run", "a run with evaluation metrics (the baseline curve)", run.path)
    if config.baseline_run:
        check_baseline(run, config.baseline_run)
    return dataclasses.replace(config, steps=config.steps or tuple(steps))


_LENGTH_FIELDS = ("steps", "n_checkpoints", "checkpoint_steps", "eval_every")


def check_baseline(run, baseline_run: str):
    """The baseline run of the multiplier: the run's config trained longer (only the train fields of its length and
    cadence differ) with a constant learning rate (a cosine run's curve depends on its length); the loaded run."""
    from workbench.run import load_run
    from workbench.training.rundir import RunDir

    base = load_run(RunDir.require(baseline_run, "retrieval.baseline_run").path)
    same = {f: getattr(base.config.train, f) for f in _LENGTH_FIELDS}
    # the pool of context-only individuals grows with a run's length; the seen individuals' batches do not change
    pool = {"packing": {"n_context": base.config.data.packing.n_context}}
    check(
        base.config == run.config.replace(train=same, data=pool),
        "retrieval.baseline_run",
        f"a run of this run's config with only train.{{{', '.join(_LENGTH_FIELDS)}}} (and "
        f"data.packing.n_context) changed",
        baseline_run,
    )
    check(
        run.config.train.schedule == "constant" or base.config.train.steps == run.config.train.steps,
        "retrieval.baseline_run",
        "a longer run only for a constant learning rate (train.schedule)",
        baseline_run,
    )
    check(
        base.config.train.steps >= run.config.train.steps,
        "retrieval.baseline_run",
        f"a run of at least train.steps={run.config.train.steps}",
        baseline_run,
    )
    return base


@dataclass(frozen=True)
class Retrieval:
    """A saved retrieval study: its folder, config, per-item rows, summary and multipliers."""

    path: Path
    config: RetrievalConfig
    meta: dict
    items: pd.DataFrame
    summary: pd.DataFrame
    multipliers: pd.DataFrame


def load_retrieval(path: str | Path) -> Retrieval:
    path = Path(path)
    meta = read_json(path / "retrieval.json")
    for name, sha in meta.get("sha256", {}).items():  # a table edited or truncated since: named, not a parser error
        if not (path / name).is_file() or sha256(path / name) != sha:
            raise ValueError(
                f"{path / name} does not match its sha256 in retrieval.json (edited, truncated or "
                f"missing): allowed the file as the workbench wrote it (or remove {path})"
            )
    cfg = RetrievalConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()})
    return Retrieval(
        path,
        cfg,
        meta,
        *(pd.read_csv(path / f"{n}.csv", keep_default_na=True) for n in ("items", "summary", "multipliers")),
    )


def retrieve(run, config: RetrievalConfig | None = None, progress: bool = True, **fields) -> Retrieval:
    """Evaluate with and without retrieval at the config's checkpoints (module docstring); load the saved
    study when it exists with the same config. Without `config`, one is built from `fields` (RetrievalConfig's;
    `source=` is short for `datastore=DatastoreConfig(source=...)`)."""
    from workbench.run import load_run

    if config is not None and not isinstance(config, RetrievalConfig):
        raise ValueError(f"config={config!r}: allowed a RetrievalConfig, or its fields by name (m=, votes=, ...)")
    if config is None:
        if "source" in fields:
            fields["datastore"] = DatastoreConfig(source=fields.pop("source"))
        config = RetrievalConfig(**fields)
    elif fields:
        raise ValueError(f"retrieve: {sorted(fields)[0]} given with a config: allowed one or the other")
    run = load_run(run) if isinstance(run, (str, os.PathLike)) else run
    config = resolve(run, config)
    return saved_or_computed(
        run.path / "retrieval" / config.name,
        "retrieval.json",
        load_retrieval,
        lambda tmp: _compute(run, config, tmp / "result", progress),
        config,
        "retrieval",
        "or another retrieval.name",
    )


def name_recall(store, data, individuals) -> float:
    """Recall@1 of the datastore queried with names alone: the share of `individuals` whose top document
    is about them."""
    queries = [np.asarray(data.biographer.name_tokens(int(i))) for i in individuals]
    top, _ = store.search(queries, 1)
    return float(np.mean(store.individuals[top[:, 0]] == np.asarray(individuals)))


def _compute(run, config: RetrievalConfig, out: Path, progress: bool) -> None:
    from tqdm.auto import tqdm

    from workbench.run import load_run

    t0 = time.perf_counter()
    data = run.data
    store = build_datastore(data, config.datastore)
    size = config.eval_size or run.config.train.eval_size
    batches = {g: data.eval_batch(g, size) for g in config.groups}
    seen_ids = np.unique(batches["seen"].individuals.numpy()) if "seen" in batches else np.asarray(data.population.seen)
    recall = name_recall(store, data, seen_ids)
    t1 = time.perf_counter()
    parts = []
    for step in tqdm(config.steps, desc="retrieval", disable=not progress):
        model = run.load_model(step)
        for g, batch in batches.items():
            modes = tuple(m for m in config.modes if m != "oracle" or g == "seen")
            items = augmented_items(model, data, store, batch, g, modes, config.m, config.votes, config.chunk)
            parts.append(items.assign(step=step))
    items = pd.concat(parts, ignore_index=True)
    items = items[["step", *[c for c in items.columns if c != "step"]]]
    summary = summarize(items, config.n_boot)
    baseline = load_run(config.baseline_run) if config.baseline_run else run  # checked by `resolve`
    multipliers = multiplier_table(items, baseline.metrics, config.n_boot)
    out.mkdir(parents=True)
    files = {"items.csv": items, "summary.csv": summary, "multipliers.csv": multipliers}
    for name, frame in files.items():
        atomic_write_csv(out / name, frame)
    atomic_write_json(
        out / "retrieval.json",
        {
            "config": dataclasses.asdict(config),
            "run": str(run.path),
            "seed": run.config.seed,
            "datastore": {"documents": len(store), "name_recall_at_1": recall},
            "baseline": {
                "run": str(baseline.path),
                "steps": baseline.config.train.steps,
                # how far its curve reaches (an unfinished baseline's last evaluation), relative to the run's length
                "times_longer": float(baseline.metrics["step"].max()) / run.config.train.steps,
            },
            "seconds": {"datastore": round(t1 - t0, 2), "evaluation": round(time.perf_counter() - t1, 2)},
            "sha256": {n: sha256(out / n) for n in files},
        },
    )


def _boot_means(per_row: np.ndarray, n_boot: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return per_row[rng.integers(len(per_row), size=(n_boot, len(per_row)))].mean(1)


def summarize(items: pd.DataFrame, n_boot: int = 500) -> pd.DataFrame:
    """Per (step, group, mode): accuracy with a 95% bootstrap interval over biographies, loss, confidence,
    copy rate and retrieval hit rate."""
    rows = []
    for (step, group, mode), g in items.groupby(["step", "group", "mode"], sort=True):
        per_row = g.groupby("row")["correct"].mean().to_numpy()
        boot = _boot_means(per_row, n_boot) if n_boot else np.array([np.nan])
        rows.append(
            {
                "step": step,
                "group": group,
                "mode": mode,
                "accuracy": per_row.mean(),
                "accuracy_lo": np.quantile(boot, 0.025),
                "accuracy_hi": np.quantile(boot, 0.975),
                "loss": g["loss"].mean(),
                "top_probability": g["top_probability"].mean(),
                "copied": g["copied"].mean(),
                "hit": g["hit"].mean(),
                "n": len(g),
            }
        )
    return pd.DataFrame(rows)


def multiplier_table(items: pd.DataFrame, metrics: pd.DataFrame, n_boot: int = 500) -> pd.DataFrame:
    """Per (step, mode) on seen individuals: the accuracy, its equivalent step on the run's baseline curve
    (metrics' attribute_accuracy), the multiplier with a 95% bootstrap interval, and its status."""
    base = metrics.dropna(subset=["attribute_accuracy"])
    steps, acc = base["step"].to_numpy(), base["attribute_accuracy"].to_numpy()
    rows = []
    for (step, mode), g in items[items["group"] == "seen"].groupby(["step", "mode"], sort=True):
        per_row = g.groupby("row")["correct"].mean().to_numpy()
        m = compute_multiplier(steps, acc, int(step), float(per_row.mean()))
        lo, hi = (
            multiplier_interval(steps, acc, int(step), _boot_means(per_row, n_boot, seed=1))
            if n_boot
            else (np.nan, np.nan)
        )
        rows.append(
            {
                "step": m.step,
                "mode": mode,
                "accuracy": m.accuracy,
                "equivalent_step": m.equivalent_step,
                "multiplier": m.multiplier,
                "multiplier_lo": lo,
                "multiplier_hi": hi,
                "bound": m.bound,
                "status": m.status,
            }
        )
    return pd.DataFrame(rows)
