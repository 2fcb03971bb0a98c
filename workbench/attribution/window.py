"""Which training sequences of a window of steps build one head: influence scores, saved in the run.

`attribute(run, AttributionConfig(layer, head, start, end))` scores every training sequence the run saw
in steps [start, end) (the batch of step s trains the update s -> s+1; each sequence is addressed as
(step, row)) by its influence, in the head's parameter subspace, on a measure of the head
(`workbench.attribution.influence`): exact (the Fisher from per-sequence gradients, solved through the Woodbury
identity; the default) or EK-FAC. Scoring is at one checkpoint (`step`, default the first at or after `end`) or
along the trajectory: the window split into segments by the run's checkpoints, each sequence scored (Fisher,
measure and gradient) at the last checkpoint at or before its step, i.e. near the weights it trained. Sign:
influence > 0 means training on the sequence raises the measure, i.e. promotes the head. Per-token influences are
summed per sentence, so a sequence's influence splits over its attributes (and their templates).

Saved under `<run>/attribution/<name>/` (written to a temporary folder, then renamed):
attribution.json (the config, the head, the measure, cost, memory, files' sha256), sequences.csv (step, row,
checkpoint, individual, influence, bos_influence, and per attribute `influence/<a>` and `template/<a>`), and the
aggregates by individual, attribute, template and step (`aggregate`). An existing attribution with the same config
is loaded, not recomputed.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.atomic import atomic_write_csv, atomic_write_json, read_json, saved_or_computed, sha256
from workbench.attribution.measures import MEASURE_SEED_OFFSET, MEASURES
from workbench.config import check, check_int, check_number

AGGREGATES = ("individual", "attribute", "template", "step")


ESTIMATORS = ("exact", "ekfac")
SCORINGS = ("checkpoint", "trajectory")
FIT_SIZE = 4096  # the Fisher's sequences when fit_size = 0 (or the whole window if it is smaller)
EXACT_MEMORY_LIMIT = 4 * 2**30  # bytes the exact estimator may hold (`exact_memory`); beyond: fewer or EK-FAC


@dataclass(frozen=True)
class AttributionConfig:
    """Influence of the training sequences of steps [start, end) on a measure of head (layer, head) at
    checkpoint `step` (0: the first checkpoint at or after `end`), or along the trajectory."""

    layer: int
    head: int
    start: int
    end: int
    step: int = 0
    measure: str = (
        "attention"  # a name in MEASURES: attention (attribute -> name; Q|K) | logit (direct logit; Q|K, V, O) | yours
    )
    measure_size: int = 256  # fixed measure set: seen individuals on evaluation templates
    fit_size: int = 0  # window sequences (seeded subset) the Fisher is fitted on; 0 = min(FIT_SIZE, the window's)
    damping: float = 0.0  # 0: 0.1 x the mean eigenvalue (the usual heuristic, and the MDA rule)
    fisher: str = "sampled"  # sampled (labels from the model: the true Fisher) | empirical (the data's labels)
    batch_size: int = 32
    estimator: str = "exact"  # exact (Woodbury) | ekfac (Kronecker-factored, for units too large for exact)
    scoring: str = "checkpoint"  # checkpoint (all at `step`) | trajectory (each at its segment's checkpoint)

    def __post_init__(self) -> None:
        check_int("attribution.layer", self.layer, 0)
        check_int("attribution.head", self.head, 0)
        check_int("attribution.start", self.start, 0)
        check_int("attribution.end", self.end, self.start + 1)
        check_int("attribution.step", self.step, 0)
        check(self.measure in MEASURES, "attribution.measure", " | ".join(MEASURES), self.measure)
        check_int("attribution.measure_size", self.measure_size, 1)
        check_int("attribution.fit_size", self.fit_size, 0)
        check_number("attribution.damping", self.damping, 0.0)
        check(self.fisher in ("sampled", "empirical"), "attribution.fisher", "sampled | empirical", self.fisher)
        check_int("attribution.batch_size", self.batch_size, 1)
        check(self.estimator in ESTIMATORS, "attribution.estimator", " | ".join(ESTIMATORS), self.estimator)
        check(self.scoring in SCORINGS, "attribution.scoring", " | ".join(SCORINGS), self.scoring)
        check(
            self.scoring == "checkpoint" or self.step == 0,
            "attribution.step",
            "0 with scoring='trajectory' (each segment is scored at its own checkpoint)",
            self.step,
        )

    @property
    def name(self) -> str:
        at = f"s{self.step}" if self.scoring == "checkpoint" else "trajectory"
        tail = (f"-d{self.damping:g}" if self.damping else "") + ("-empirical" if self.fisher == "empirical" else "")
        return f"L{self.layer}H{self.head}-{self.measure}-{self.estimator}-w{self.start}-{self.end}-{at}{tail}"


def resolve(run, config: AttributionConfig) -> AttributionConfig:
    """The config checked against the run (head, window, checkpoint), with `step` filled in; raises a
    ValueError naming the field before any compute."""
    from workbench.attribution.heads import check_head

    if run.config.edit is not None:
        raise ValueError(
            f"run {run.path} is an edited retrain: allowed a run trained on its original batches "
            f"(attribute the run it was edited from)"
        )
    check(
        run.config.data.packing.k == 1,
        "data.packing.k",
        "1 in an attributed run (scores are aggregated by "
        "each sequence's one individual and sentence; packed sequences are not supported yet)",
        run.config.data.packing.k,
    )
    check_head(run.config.model, config.layer, config.head)
    check_window(
        run,
        config.start,
        config.end,
        f"attribution.start, attribution.end = {config.start}, {config.end}",
        "start < end",
    )
    window = (config.end - config.start) * run.config.train.batch_size
    check(
        config.fit_size <= window,
        "attribution.fit_size",
        f"[0, {window}] (the window's sequences; 0 = min({FIT_SIZE}, all))",
        config.fit_size,
    )
    if config.scoring == "trajectory":
        return config
    steps = run.checkpoint_steps
    step = config.step or next((s for s in steps if s >= config.end), 0)
    check(step in steps, "attribution.step", f"a checkpoint step of the run: {steps}", config.step or "none after end")
    return dataclasses.replace(config, step=step)


def segments(config: AttributionConfig, checkpoints) -> list[tuple[int, int, int]]:
    """The window's segments (start, end, checkpoint step): with scoring 'checkpoint' one, the whole window at
    `config.step`; with 'trajectory' the window split at the run's checkpoints, each segment at the last checkpoint
    at or before its first step (the weights its sequences trained, as near as the checkpoints allow)."""
    if config.scoring == "checkpoint":
        return [(config.start, config.end, config.step)]
    cuts = sorted({config.start, *(c for c in checkpoints if config.start < c < config.end), config.end})
    return [(a, b, max(c for c in checkpoints if c <= a)) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def check_window(run, start: int, end: int, given: str, form: str = "START < END") -> None:
    """A window of steps [start, end) within what the run trained (its planned steps and its last checkpoint);
    else a ValueError: '<given>: allowed <form> within the run's steps [0, N]'."""
    trained = min(run.config.train.steps, run.checkpoint_steps[-1] if run.checkpoint_steps else 0)
    if not 0 <= start < end <= trained:
        raise ValueError(f"{given}: allowed {form} within the run's steps [0, {trained}]")


def window_batch(data, start: int, end: int):
    """The training sequences of steps [start, end), in (step, row) order, as one padded Batch."""
    from workbench.data.batch import cat_batches

    return cat_batches([data.train_batch(s) for s in range(start, end)], data.tokenizer.pad_id)


def attribute(run, config: AttributionConfig | None = None, progress: bool = True, **fields) -> "Attribution":
    """Score the window's sequences (module docstring); load the saved scores when they exist.

    Without `config`, one is built from `fields` (AttributionConfig's): the window `start`, `end` defaults to the
    run's plateau, the head (`layer`, `head`) to `find_recall_head`'s choice (within `layer` when given)."""
    from workbench.run import load_run

    if config is not None and not isinstance(config, AttributionConfig):
        raise ValueError(
            f"config={config!r}: allowed an AttributionConfig, or the fields by name (layer=, head=, start=, end=, ...)"
        )
    run = load_run(run) if isinstance(run, (str, os.PathLike)) else run
    config = resolve(run, config if config is not None else _default_config(run, fields, progress))
    return saved_or_computed(
        run.path / "attribution" / config.name,
        "attribution.json",
        load_attribution,
        lambda tmp: _compute(run, config, tmp, progress),
        config,
        "attribution",
        "or remove it",
    )


def _default_config(run, fields: dict, progress: bool) -> AttributionConfig:
    """An AttributionConfig from `fields`, the window and the head found on the run where not given."""
    from workbench.attribution.heads import find_recall_head

    fields = dict(fields)
    if fields.get("head") is not None and fields.get("layer") is None:
        raise ValueError("head is given without layer: allowed both, or neither (the recall head is found)")
    if fields.get("start") is None or fields.get("end") is None:
        phases = run.phases()
        if not phases.exists or phases.censored:
            raise ValueError(
                f"run {run.path} has {phases.describe()}: allowed a run whose plateau ends, or give "
                f"start and end (the window of steps)"
            )
        fields["start"] = int(phases.plateau_start) if fields.get("start") is None else fields["start"]
        fields["end"] = int(phases.plateau_end) if fields.get("end") is None else fields["end"]
    start, end = fields["start"], fields["end"]
    if type(start) is int and type(end) is int:  # before the head search (compute); other types: the config's check
        check_window(run, start, end, f"attribution.start, attribution.end = {start}, {end}", "start < end")
    if fields.get("head") is None:
        layer = fields.get("layer")
        found = find_recall_head(run, layers=None if layer is None else (layer,), progress=progress)
        fields["layer"], fields["head"] = found.layer, found.head
    return AttributionConfig(**fields)


def _compute(run, config: AttributionConfig, tmp: Path, progress: bool) -> None:
    from workbench.attribution.influence import INFLUENCES, exact_memory
    from workbench.attribution.shim import HeadView

    t0 = time.perf_counter()
    data = run.data
    measure = MEASURES[config.measure]()
    measure_batch = data.eval_batch("seen", config.measure_size, seed_offset=MEASURE_SEED_OFFSET)
    parts = segments(config, run.checkpoint_steps)
    n_fit = min(config.fit_size or FIT_SIZE, max(b - a for a, b, _ in parts) * run.config.train.batch_size)
    memory, first = 0, HeadView(run.load_model(parts[0][2]), config.layer, config.head)  # the first segment's
    if config.estimator == "exact":  # the largest segment's solve, checked before any of them is computed
        memory = exact_memory(first, measure.modules, n_fit)
        if memory > EXACT_MEMORY_LIMIT:
            raise ValueError(
                f"attribution.fit_size={n_fit}: the exact influence would hold {memory / 2**30:.1f} GiB: allowed "
                f"at most {EXACT_MEMORY_LIMIT / 2**30:.0f} GiB (a smaller fit_size, or estimator='ekfac')"
            )
    tables, seconds = [], {"setup": 0.0, "influence": 0.0}
    for i, (a, b, step) in enumerate(parts):
        t1 = time.perf_counter()
        train = window_batch(data, a, b)
        view = first if i == 0 else HeadView(run.load_model(step), config.layer, config.head)
        t2 = time.perf_counter()
        influence, per_token = INFLUENCES[config.estimator](
            view,
            measure,
            train,
            measure_batch,
            damping=config.damping or None,
            fisher=config.fisher,
            fit_size=min(n_fit, len(train)),
            per_token=True,
            batch_size=config.batch_size,
            progress=progress,
        )
        seconds["setup"] += t2 - t1
        seconds["influence"] += time.perf_counter() - t2
        tables.append(sequence_table(data, a, b, step, train, influence, per_token))
    sequences = pd.concat(tables, ignore_index=True)
    seconds = {k: round(v, 2) for k, v in seconds.items()} | {"total": round(time.perf_counter() - t0, 2)}
    write_attribution(tmp / "result", config, run, sequences, seconds, {"exact_memory_bytes": memory})


def write_attribution(
    out: Path, config: AttributionConfig, run, sequences: pd.DataFrame, seconds: dict, extra: dict | None = None
) -> None:
    """Write an attribution folder: the per-sequence table, its aggregates, and attribution.json last."""
    out.mkdir(parents=True)
    files = {"sequences.csv": sequences, **{f"by_{by}.csv": aggregate(sequences, by) for by in AGGREGATES}}
    for name, frame in files.items():
        atomic_write_csv(out / name, frame)
    atomic_write_json(
        out / "attribution.json",
        {
            "config": dataclasses.asdict(config),
            "run": str(run.path),
            "seed": run.config.seed,
            "n_sequences": len(sequences),
            "attributes": list(run.config.data.attributes),
            "sign": "influence > 0: training on the sequence raises the measure (promotes the head)",
            "seconds": seconds,
            **(extra or {}),
            "sha256": {n: sha256(out / n) for n in files},
        },
    )


def sequence_table(data, start: int, end: int, checkpoint: int, train, influence, per_token) -> pd.DataFrame:
    """One row per (step, row) of steps [start, end), scored at `checkpoint`: individual, influence, and per
    attribute its sentence's template and influence: the per-token influences of the input positions in that
    sentence. The per-token score at position p is the part of the score that flows through the tracked modules'
    input at p (Q, K, V of that token), which losses at p and later positions reach. The BOS position's share (its
    key, read by every later query) belongs to no sentence: `bos_influence`; the parts add up to `influence`."""
    import torch

    from workbench.data.kinds import BOS

    attributes = data.config.data.attributes
    b = data.config.train.batch_size
    table = {
        "step": np.repeat(np.arange(start, end), b),
        "row": np.tile(np.arange(b), end - start),
        "checkpoint": np.full((end - start) * b, checkpoint),
        "individual": train.individuals.numpy(),
        "influence": np.asarray(influence, dtype=np.float64),
    }
    tokens = torch.as_tensor(np.asarray(per_token, dtype=np.float64))[:, : train.tokens.shape[1]]
    position_attr = train.attribute.long()  # the sentence of each input position (-1 on BOS/padding)
    templates = np.concatenate([data.train_templates(s) for s in range(start, end)])
    table["bos_influence"] = (tokens * (train.kind == BOS)).sum(1).numpy()  # the BOS position's share
    for j, a in enumerate(attributes):
        table[f"influence/{a}"] = (tokens * (position_attr == j)).sum(1).numpy()
        table[f"template/{a}"] = templates[:, j]
    return pd.DataFrame(table)


def aggregate(sequences: pd.DataFrame, by: str) -> pd.DataFrame:
    """Influence summed (total), averaged (mean) and counted (n) by individual, attribute, template
    (attribute, template) or step; rows in descending total."""
    check(by in AGGREGATES, "by", " | ".join(AGGREGATES), by)
    if by in ("individual", "step"):
        g = sequences.groupby(by)["influence"]
        out = pd.DataFrame({"total": g.sum(), "mean": g.mean(), "n": g.size()}).reset_index()
    else:
        attributes = [c.split("/", 1)[1] for c in sequences.columns if c.startswith("influence/")]
        long = pd.concat(
            [
                pd.DataFrame(
                    {"attribute": a, "template": sequences[f"template/{a}"], "influence": sequences[f"influence/{a}"]}
                )
                for a in attributes
            ]
        )
        keys = ["attribute"] if by == "attribute" else ["attribute", "template"]
        g = long.groupby(keys)["influence"]
        out = pd.DataFrame({"total": g.sum(), "mean": g.mean(), "n": g.size()}).reset_index()
    return out.sort_values("total", ascending=False, kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class Attribution:
    """A saved attribution: its folder, config, metadata and per-sequence scores."""

    path: Path
    config: AttributionConfig
    meta: dict = dataclasses.field(compare=False, repr=False)

    @property
    def sequences(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "sequences.csv")

    def aggregate(self, by: str) -> pd.DataFrame:
        check(by in AGGREGATES, "by", " | ".join(AGGREGATES), by)
        return pd.read_csv(self.path / f"by_{by}.csv")

    @property
    def run_path(self) -> Path:
        return Path(self.meta["run"])


def load_attribution(path: str | os.PathLike) -> Attribution:
    """An attribution folder (`<run>/attribution/<name>`), its files checked against their sha256."""
    path = Path(path)
    meta_file = path / "attribution.json"
    if not meta_file.exists():
        raise ValueError(
            f"{path} is not an attribution folder (no attribution.json): allowed "
            f"<run>/attribution/<name> written by workbench.attribution.attribute"
        )
    meta = read_json(meta_file)
    for name, sha in meta["sha256"].items():
        if sha256(path / name) != sha:
            raise ValueError(f"{path / name} does not match its sha256 in attribution.json (edited or truncated)")
    return Attribution(path, AttributionConfig(**_current_keys(meta["config"])), meta)


_OLD_KEYS = {"probe": "measure", "probe_size": "measure_size"}  # saved before the head's probe became a measure
_OLD_DEFAULTS = {"estimator": "ekfac", "scoring": "checkpoint"}  # saved before exact influence became the default


def _current_keys(config: dict) -> dict:
    """A saved config's fields under their current names (attributions saved with `probe`, or before the
    estimator was a field, still load)."""
    return _OLD_DEFAULTS | {_OLD_KEYS.get(k, k): v for k, v in config.items()}


def remove_attribution(path: str | os.PathLike) -> None:
    """Delete a saved attribution folder (e.g. to recompute it with another config)."""
    load_attribution(path)  # only ever deletes an attribution folder
    shutil.rmtree(path)
