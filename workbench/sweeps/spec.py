"""A sweep: a base config plus a grid over dotted config fields; every point is an ordinary run.

A spec names its base (a preset, a fine-tuning base run, a patching reference run, or an attribution
whose run is retrained with edited data), overrides
applied to every point (`set`), a grid (the product of value lists per dotted path), optional explicit
`cases` (each a set of overrides; the grid is crossed with them), a folder for the run directories
(`out`, default `<checkpoints>/sweeps/<name>`) and the resources each trial requests.

    name = "cpu-scaling"
    preset = "cpu-sweep"
    [grid]
    "data.n_individuals" = [500, 1000, 2000, 4000]
    seed = [0, 1]
    [resources]
    cpus = 1

Relative paths in a spec (`out`, `finetune.base_run`, `patch.reference_run`, `edit.attribution`) are relative to the
checkpoints root (`workbench.run.checkpoints_root()`). Building and validating the points' configs
is the composition root's job (`workbench.experiment.plan_sweep`), which knows the features.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import tomllib

from workbench.config import PRESETS, check, check_int, check_number
from workbench.naming import point_name

SPEC_DIR = Path(__file__).with_name("specs")
SPEC_KEYS = (
    "name",
    "preset",
    "finetune",
    "patch",
    "edit",
    "set",
    "grid",
    "cases",
    "out",
    "trial_name",
    "resources",
    "budget",
)
BASE_KEYS = {
    "finetune": ("base_run", "base_step", "steps", "lr", "eval_every"),
    "patch": ("reference_run",),
    "edit": ("attribution",),
}
BASE_TABLES = tuple(BASE_KEYS)


@dataclass(frozen=True)
class Resources:
    """What one trial requests from Ray: CPUs, a GPU fraction (0.25: four trials share a GPU), and the
    torch threads it uses (0: as many as its CPUs, at least 1)."""

    cpus: float = 1.0
    gpus: float = 0.0
    threads: int = 0

    def __post_init__(self) -> None:
        check_number("resources.cpus", self.cpus, 0.0, 1024)
        check_number("resources.gpus", self.gpus, 0.0, 64)
        check_int("resources.threads", self.threads, 0, 1024)

    @property
    def torch_threads(self) -> int:
        return self.threads or max(1, math.ceil(self.cpus))


@dataclass(frozen=True)
class Budget:
    """A budget that adapts to the run (`[budget]` in a spec): a trial trained to its `train.steps` is extended by
    `factor` (constant-lr runs only) until it has escaped its plateau and memorised, i.e. its final attribute
    accuracy is at least `until_accuracy` and it ran at least `plateau_multiple` times its plateau end, or until
    `max_steps`. The first budget is the point's train.steps; every extension is exact (`extension`). The final
    accuracy is that of the last checkpoint on `eval_size` fresh biographies of seen individuals
    (`Run.seen_accuracy`; 0: the run's last evaluation, which may hold only 64). The trials named in `gate_runs`
    (a capacity gate: one run per grid cell trained on to high accuracy) are held to `gate_accuracy` instead of
    `until_accuracy` (`for_run`)."""

    max_steps: int = 0
    until_accuracy: float = 0.5
    plateau_multiple: float = 2.0
    factor: float = 2.0
    gate_runs: tuple[str, ...] = ()
    gate_accuracy: float = 0.9
    eval_size: int = 1024

    def __post_init__(self) -> None:
        check_int("budget.max_steps", self.max_steps, 1, 100_000_000)
        check_number("budget.until_accuracy", self.until_accuracy, 0.0, 1.0)
        check_number("budget.plateau_multiple", self.plateau_multiple, 1.0)
        check_number("budget.factor", self.factor, 1.0, 100.0, lo_open=True)
        check_number("budget.gate_accuracy", self.gate_accuracy, 0.0, 1.0)
        check_int("budget.eval_size", self.eval_size, 0, 1_000_000)
        runs = self.gate_runs
        check(
            isinstance(runs, (list, tuple)) and all(isinstance(r, str) for r in runs),
            "budget.gate_runs",
            "a list of trial names",
            runs,
        )
        object.__setattr__(self, "gate_runs", tuple(runs))

    def for_run(self, trial: str) -> Budget:
        """This budget as it applies to the trial named `trial`: a gate run is held to `gate_accuracy`."""
        gated = trial in self.gate_runs
        return dataclasses.replace(self, until_accuracy=self.gate_accuracy, gate_runs=()) if gated else self

    def done(self, steps: int, final_accuracy: float | Callable[[], float], plateau_end: float) -> bool:
        """Escaped and memorised, or out of budget; `plateau_end` is 0 for a run without a plateau (nothing to
        escape) and inf for one that has not escaped yet; `final_accuracy` may be a function, called only when
        the accuracy decides."""
        if steps >= self.max_steps or steps < self.plateau_multiple * plateau_end:
            return steps >= self.max_steps
        return (final_accuracy() if callable(final_accuracy) else final_accuracy) >= self.until_accuracy

    def next_steps(self, steps: int) -> int:
        return min(self.max_steps, max(steps + 1, math.ceil(steps * self.factor)))


def _frozen(d: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep spec (see the module docstring); `points()` lists its grid points."""

    name: str
    preset: str = ""  # the base: a preset, or ...
    finetune: Mapping[str, Any] | None = None  # ... fine-tuning runs of base_run at base_step, or ...
    patch: Mapping[str, Any] | None = None  # ... patched twins of reference_run, or ...
    edit: Mapping[str, Any] | None = None  # ... retrains of an attribution's run with edited data
    set: Mapping[str, Any] = field(default_factory=dict)  # dotted path -> value, every point
    grid: Mapping[str, tuple] = field(default_factory=dict)  # dotted path -> values (the product)
    cases: tuple[Mapping[str, Any], ...] = ()  # explicit override sets, crossed with the grid
    out: str = ""  # default: <checkpoints root>/sweeps/<name>
    trial_name: str = ""  # e.g. "patch-ref{patch.reference_step}-start{patch.start_step}"; default from values
    resources: Resources = field(default_factory=Resources)
    budget: Budget | None = None  # None: each trial trains exactly its train.steps

    def __post_init__(self) -> None:
        check(
            isinstance(self.name, str) and re.fullmatch(r"[\w.+-]+", self.name or "") is not None,
            "name",
            "a non-empty name of letters, digits and _ . + -",
            self.name,
        )
        bases = [k for k in ("preset", *BASE_TABLES) if getattr(self, k)]
        check(len(bases) == 1, "preset", "exactly one base: preset = NAME, [finetune], [patch] or [edit]", bases)
        if self.preset:
            check(self.preset in PRESETS, "preset", f"one of {PRESETS}", self.preset)
        for kind in BASE_TABLES:
            table = getattr(self, kind)
            if table is not None:
                check(isinstance(table, Mapping), kind, "a table", table)
                unknown = sorted(set(table) - set(BASE_KEYS[kind]))
                check(not unknown, f"{kind}.{unknown[0] if unknown else ''}", f"keys of {BASE_KEYS[kind]}", unknown)
                key = BASE_KEYS[kind][0]
                check(
                    isinstance(table.get(key), str) and bool(table.get(key)),
                    f"{kind}.{key}",
                    "a directory",
                    table.get(key),
                )
                object.__setattr__(self, kind, _frozen(table))
        check(isinstance(self.set, Mapping), "set", "a table of PATH = VALUE", self.set)
        check(isinstance(self.grid, Mapping), "grid", "a table of PATH = [VALUES]", self.grid)
        grid = {}
        for path, values in self.grid.items():
            check(isinstance(values, (list, tuple)) and len(values) > 0, f"grid.{path}", "a non-empty list", values)
            check(len(set(map(repr, values))) == len(values), f"grid.{path}", "distinct values", values)
            grid[path] = tuple(values)
        object.__setattr__(self, "set", _frozen(self.set))
        object.__setattr__(self, "grid", _frozen(grid))
        check(
            isinstance(self.cases, (list, tuple)) and all(isinstance(c, Mapping) for c in self.cases),
            "cases",
            "a list of tables of PATH = VALUE",
            self.cases,
        )
        object.__setattr__(self, "cases", tuple(_frozen(c) for c in self.cases))
        for c in self.cases:
            both = sorted(set(c) & set(grid))
            check(not both, "cases", f"paths not also in the grid (both: {both})", dict(c))
        check(isinstance(self.out, str), "out", "a folder path", self.out)
        check(isinstance(self.trial_name, str), "trial_name", "a name pattern", self.trial_name)
        if isinstance(self.resources, Mapping):
            object.__setattr__(self, "resources", _from_table(Resources, self.resources, "resources"))
        if isinstance(self.budget, Mapping):
            object.__setattr__(self, "budget", _from_table(Budget, self.budget, "budget"))
        check(self.budget is None or isinstance(self.budget, Budget), "budget", "a [budget] table", self.budget)
        names = [n for n, _ in self.points()]
        dupes = sorted({n for n in names if names.count(n) > 1})
        check(not dupes, "trial_name", "a pattern that gives every point its own name", dupes[:3])
        strangers = sorted(set(self.budget.gate_runs if self.budget else ()) - set(names))
        check(not strangers, "budget.gate_runs", f"names of this sweep's trials (e.g. {names[0]})", strangers)

    def points(self) -> list[tuple[str, dict[str, Any]]]:
        """(trial name, {dotted path: value}) for every point: set, then the case, then the grid values."""
        keys = list(self.grid)
        out = []
        for case in self.cases or ({},):
            for combo in itertools.product(*(self.grid[k] for k in keys)):
                varying = {k: v for k, v in case.items() if k != "name"} | dict(zip(keys, combo))
                values = dict(self.set) | varying
                out.append((self._name(case.get("name"), varying, values), values))
        return out

    def _name(self, case_name: str | None, varying: dict[str, Any], values: dict[str, Any]) -> str:
        if case_name and not self.trial_name:  # a named case stands for its values
            varying = {k: v for k, v in varying.items() if k in self.grid}
        return point_name(values, varying, self.trial_name, case_name)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "name": self.name,
            "preset": self.preset,
            "set": dict(self.set),
            "grid": {k: list(v) for k, v in self.grid.items()},
            "cases": [dict(c) for c in self.cases],
            "out": self.out,
            "trial_name": self.trial_name,
            "resources": {"cpus": self.resources.cpus, "gpus": self.resources.gpus, "threads": self.resources.threads},
        }
        if self.budget is not None:
            d["budget"] = dataclasses.asdict(self.budget)
        for kind in BASE_TABLES:
            if getattr(self, kind) is not None:
                d[kind] = dict(getattr(self, kind))
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SweepSpec":
        unknown = sorted(set(d) - set(SPEC_KEYS))
        check(not unknown, unknown[0] if unknown else "", f"top-level keys of {SPEC_KEYS}", unknown)
        return cls(**dict(d))


def _from_table(cls: type, table: Mapping[str, Any], section: str):
    allowed = cls.__dataclass_fields__
    unknown = sorted(set(table) - set(allowed))
    check(not unknown, f"{section}.{unknown[0] if unknown else ''}", f"keys of {tuple(allowed)}", unknown)
    return cls(**dict(table))


def spec_path(name_or_path: str | Path) -> Path:
    """A spec file: an existing path, or the name of a shipped spec (e.g. `cpu/scaling`)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = SPEC_DIR / f"{name_or_path}.toml"
    if shipped.is_file():
        return shipped
    raise ValueError(
        f"spec={str(name_or_path)!r} is neither a file nor a shipped spec: allowed a TOML file or "
        f"one of {', '.join(shipped_specs())}"
    )


def shipped_specs() -> list[str]:
    """The names of the spec files shipped with the workbench (`cpu/scaling`, `gpu/scaling`, ...)."""
    return sorted(str(p.relative_to(SPEC_DIR).with_suffix("")) for p in SPEC_DIR.glob("*/*.toml"))


def load_spec(name_or_path: str | Path | Mapping[str, Any] | SweepSpec) -> SweepSpec:
    """A SweepSpec from a TOML file, a shipped spec name, a dict, or a SweepSpec (returned as is)."""
    if isinstance(name_or_path, SweepSpec):
        return name_or_path
    if isinstance(name_or_path, Mapping):
        return SweepSpec.from_dict(name_or_path)
    path = spec_path(name_or_path)
    try:
        table = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"spec={str(path)!r} is not valid TOML: {e}") from e
    return SweepSpec.from_dict(table)
