"""The causal test of an attribution: retrain the attributed run's twin with sequences removed or duplicated.

A retrain is an ordinary run (metrics, checkpoints, exact resume) whose config carries an `EditConfig`:
the attributed run's config (same seed: same initial weights, population and batches) with the
selected sequences of the attribution's window removed from, or duplicated in, their batches
(`workbench.data.edits`). It starts from initialisation: the batches before the window are the
attributed run's, so on CPU the twin follows it exactly up to the window (equivalent to starting from
the checkpoint before it). `train.steps` may be shorter under a constant learning rate (the schedule
does not then depend on the run's length); evaluation and checkpoint cadence may differ.

Selections (`EditConfig.selection`) over the window's sequences ranked by influence (> 0 promotes the
head): top (the k% most promoting), bottom (the k% most demoting), random (k% at random), matched
(random sequences with the top set's count per individual: controls for who the sequences are about), planted
(every sequence of the run's planted individuals, `planted_individuals`: the oracle of the planted-signal positive
control).

    workbench.sweep(retrain_spec([attribution], arms=ARMS))  # top / random / matched removal of 10%
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from workbench.attribution.window import Attribution, load_attribution
from workbench.config import EditConfig, RunConfig, TrainConfig, assign
from workbench.data.edits import SequenceEdit
from workbench.naming import under_root
from workbench.run import Run, load_run

# train fields a retrain may change relative to the attributed run
_FREE_TRAIN_FIELDS = ("steps", "eval_every", "eval_size", "checkpoint_steps", "n_checkpoints", "device")


def _attribution(config: RunConfig) -> Attribution:
    path = Path(config.edit.attribution)
    return load_attribution(under_root(path))


def select(attribution: Attribution, edit: EditConfig) -> np.ndarray:
    """[n, 2] (step, row) pairs of the window that `edit` selects (see the module docstring)."""
    seqs = attribution.sequences
    if edit.selection == "planted":
        planted = planted_individuals(load_run(attribution.run_path).config)
        return seqs[["step", "row"]].to_numpy()[np.flatnonzero(seqs["individual"].isin(planted).to_numpy())]
    rng = np.random.default_rng([edit.selection_seed, 31])
    order = np.lexsort((seqs["row"], seqs["step"], -seqs["influence"]))  # most promoting first, ties by (step, row)
    if edit.unit == "individual":
        totals = seqs.groupby("individual")["influence"].sum().sort_values(ascending=False, kind="stable")
        n = max(1, round(edit.percent / 100 * len(totals)))
        ids = {
            "top": totals.index[:n],
            "bottom": totals.index[::-1][:n],
            "random": rng.choice(totals.index.to_numpy(), n, replace=False),
        }[edit.selection]
        chosen = np.flatnonzero(seqs["individual"].isin(ids).to_numpy())
    else:
        n = max(1, round(edit.percent / 100 * len(seqs)))
        if edit.selection == "top":
            chosen = order[:n]
        elif edit.selection == "bottom":
            chosen = order[::-1][:n]
        elif edit.selection == "random":
            chosen = rng.choice(len(seqs), n, replace=False)
        else:  # matched: per individual, as many random sequences of theirs as the top set holds
            counts = seqs["individual"].iloc[order[:n]].value_counts()
            by_individual = seqs.groupby("individual").indices
            chosen = np.concatenate([rng.choice(by_individual[i], c, replace=False) for i, c in counts.items()])
    return seqs[["step", "row"]].to_numpy()[np.sort(chosen)]  # sequences.csv is in (step, row) order


def planted_individuals(config: RunConfig) -> np.ndarray:
    """The individuals a run plants: its rule-following sub-population (`data.n_planted`, workbench.data.planted),
    else a celebrities run's first n_celebrities (sampled more often); else a ValueError (no planted set)."""
    if config.data.n_planted:
        return np.arange(config.data.n_planted)
    sampler = config.data.sampler
    if sampler.kind != "celebrities":
        raise ValueError(
            f"edit.selection='planted' on a run with data.sampler.kind={sampler.kind!r} and data.n_planted=0: allowed "
            f"a run with data.n_planted > 0 or data.sampler.kind='celebrities' (its planted individuals)"
        )
    return np.arange(sampler.n_celebrities)


def sequence_edit(config: RunConfig, attribution: Attribution | None = None) -> SequenceEdit:
    """The `SequenceEdit` a retrain config describes."""
    pairs = select(attribution or _attribution(config), config.edit)
    kind = "remove" if config.edit.action == "remove" else "duplicate"
    return SequenceEdit(config.train.batch_size, **{kind: pairs})


def check_twin(config: RunConfig, run: Run) -> None:
    """The retrain is the attributed run's twin (seed, data, model, optimiser; see the module docstring)."""
    attributed = config.edit.attribution
    for name in ("seed", "data", "model"):
        mine, theirs = getattr(config, name), getattr(run.config, name)
        if mine != theirs:
            raise ValueError(
                f"{name}={mine!r} differs from the attributed run {run.path} ({theirs!r}): allowed "
                f"the attributed run's {name} (edit.attribution={attributed!r} retrains its twin)"
            )
    for f in dataclasses.fields(TrainConfig):
        mine, theirs = getattr(config.train, f.name), getattr(run.config.train, f.name)
        free = f.name in _FREE_TRAIN_FIELDS and not (f.name == "steps" and config.train.schedule != "constant")
        if mine != theirs and not free:
            raise ValueError(
                f"train.{f.name}={mine!r} differs from the attributed run {run.path} ({theirs!r}): "
                f"allowed {theirs!r} (only {', '.join(_FREE_TRAIN_FIELDS)} may differ, and steps "
                f"only with train.schedule='constant')"
            )


def validate_edit(config: RunConfig) -> SequenceEdit:
    """Check a retrain config against its attribution and run (twin, length); its `SequenceEdit`."""
    attribution = _attribution(config)
    check_twin(config, load_run(attribution.run_path))
    end = attribution.config.end
    if config.train.steps < end:
        raise ValueError(
            f"train.steps={config.train.steps} is out of range: allowed >= {end} (the end of the attribution's window)"
        )
    return sequence_edit(config, attribution)


def prepare_edit(config: RunConfig, data, model, device: str, fresh: bool) -> list:
    """The composition root's hook: validate the retrain and install its edit on the data."""
    data.set_edit(validate_edit(config))
    return []


def edit_tokenizer(config: RunConfig):
    """The attributed run's saved tokenizer (the twin tokenizes exactly as it did)."""
    return load_run(_attribution(config).run_path).tokenizer


def retrain_config(attribution: str | Path | Attribution, steps: int | None = None, **edit) -> RunConfig:
    """The attributed run's config with an `EditConfig(attribution, **edit)` (and `train.steps`)."""
    attribution = attribution if isinstance(attribution, Attribution) else load_attribution(attribution)
    config = load_run(attribution.run_path).config
    config = config.replace(edit=EditConfig(str(attribution.path), **edit))
    return config if steps is None else config.replace(train={"steps": steps})


def sweep_config(table: Mapping[str, Any], values: Mapping[str, Any]) -> RunConfig:
    """One point of a sweep whose base is an `[edit]` table (`attribution`, which a case may replace with its own
    `edit.attribution`): the attributed run's twin with the point's other values assigned, validated."""
    attribution = under_root(values.get("edit.attribution", table["attribution"]))
    cfg = assign(retrain_config(attribution), {k: v for k, v in values.items() if k != "edit.attribution"})
    validate_edit(cfg)
    return cfg


ARMS = tuple({"action": "remove", "selection": s, "percent": 10.0} for s in ("top", "random", "matched"))


def retrain_spec(
    attributions,
    arms=ARMS,
    selection_seeds=(0,),
    unit: str = "sequence",
    name: str = "retrain",
    steps: int | None = None,
    n_checkpoints: int | None = None,
    cpus: int = 1,
) -> dict:
    """A sweep spec (for `workbench.sweep`): for each attribution (its run's twin) and arm (a dict of
    EditConfig fields: action, selection, percent), one retrain per selection seed. Trials are named
    seed<run seed>-<action>-<selection>-k<percent>[-selection_seed<s>]."""
    attributions = [
        a if isinstance(a, Attribution) else load_attribution(a)
        for a in (attributions if isinstance(attributions, (list, tuple)) else [attributions])
    ]
    cases = []
    for a in attributions:
        for arm in arms:
            arm = {"action": "remove", "selection": "top", "percent": 10.0} | dict(arm)
            label = f"seed{a.meta['seed']}-{arm['action']}-{arm['selection']}-k{float(arm['percent']):g}"
            cases.append({"name": label, "edit.attribution": str(a.path), **{f"edit.{k}": v for k, v in arm.items()}})
    settings = (
        {"edit.unit": unit}
        | ({"train.steps": steps} if steps else {})
        | ({"train.n_checkpoints": n_checkpoints} if n_checkpoints else {})
    )
    seeds = list(selection_seeds)
    grid = {"edit.selection_seed": seeds} if len(seeds) > 1 else {}
    if len(seeds) == 1:
        settings["edit.selection_seed"] = seeds[0]
    return {
        "name": name,
        "edit": {"attribution": str(attributions[0].path)},
        "cases": cases,
        "set": settings,
        "grid": grid,
        "resources": {"cpus": cpus},
    }


def warmup_individuals(attribution: Attribution, n: int, selection: str = "top", seed: int = 0) -> list[int]:
    """`n` warm-up individuals: the most promoting by summed influence over the window (`top`), or `n`
    of the run's seen individuals at random (`random`, the control)."""
    from workbench.config import check, check_int

    run = load_run(attribution.run_path)
    n_seen = run.config.data.n_individuals
    check_int("n", n, 1, n_seen)
    check(selection in ("top", "random"), "selection", "top | random", selection)
    if selection == "random":
        return sorted(np.random.default_rng([seed, 37]).choice(n_seen, n, replace=False).tolist())
    ranked = attribution.aggregate("individual")["individual"].tolist()
    if len(ranked) < n:
        raise ValueError(f"n={n} is out of range: allowed [1, {len(ranked)}] (individuals seen in the window)")
    return sorted(ranked[:n])


def curriculum_spec(
    attributions,
    n_warmup: int,
    warmup_steps: int,
    name: str = "attribution-curriculum",
    steps: int | None = None,
    n_checkpoints: int | None = None,
    cpus: int = 1,
) -> dict:
    """A sweep spec: per attributed run (a preset's config), a warm-up curriculum on its `n_warmup` most
    promoting individuals vs on as many random ones, for `warmup_steps` steps, then all uniformly. The
    attributed run itself (uniform sampling, same seed) is the uniform arm."""
    from workbench.config import assign, preset

    attributions = [
        a if isinstance(a, Attribution) else load_attribution(a)
        for a in (attributions if isinstance(attributions, (list, tuple)) else [attributions])
    ]
    cases, base = [], None
    for a in attributions:
        config = load_run(a.run_path).config
        settings = {
            "train.steps": config.train.steps,
            "train.n_checkpoints": config.train.n_checkpoints,
            "data.n_individuals": config.data.n_individuals,
        }
        rebuilt = assign(preset(config.preset), settings | {"seed": config.seed})
        if rebuilt != config:
            raise ValueError(
                f"run {a.run_path} is not its preset {config.preset!r} with train.steps, "
                f"train.n_checkpoints and data.n_individuals changed: allowed such a run"
            )
        if base not in (None, (config.preset, tuple(settings.items()))):
            raise ValueError("the attributed runs differ in more than their seed: allowed one config, several seeds")
        base = (config.preset, tuple(settings.items()))
        for selection in ("top", "random"):
            cases.append(
                {
                    "name": f"seed{config.seed}-warmup-{selection}{n_warmup}",
                    "seed": config.seed,
                    "data.sampler.warmup_ids": warmup_individuals(a, n_warmup, selection, config.seed),
                }
            )
    settings = dict(base[1]) | {"data.sampler.kind": "warmup", "data.sampler.warmup_steps": warmup_steps}
    settings |= ({"train.steps": steps} if steps else {}) | (
        {"train.n_checkpoints": n_checkpoints} if n_checkpoints else {}
    )
    return {"name": name, "preset": base[0], "set": settings, "cases": cases, "resources": {"cpus": cpus}}
