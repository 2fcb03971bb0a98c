"""Deriving configs: typed assignments by dotted path (`assign`), and the `--set PATH=VALUE` text parser
(`override`) on top of it.

Sweeps, grids and features derive configs with `assign` (typed values, e.g. from a TOML spec), never by
turning values into strings and parsing them back; only the command line's text goes through `override`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from workbench.config.schema import RunConfig

_PARSERS = {
    "int": int,
    "float": float,
    "str": str,
    "bool": lambda s: {"true": True, "1": True, "false": False, "0": False}[s.lower()],
    "tuple[int, ...]": lambda s: tuple(int(x) for x in s.strip("()[]").split(",") if x.strip()),
    "tuple[str, ...]": lambda s: tuple(x.strip() for x in s.strip("()[]").split(",") if x.strip()),
}


def _sections(obj: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(obj) if dataclasses.is_dataclass(getattr(obj, f.name))]


def _field(config: RunConfig, path: str) -> tuple[list[str], str, str]:
    """(parents, leaf, declared type) of a dotted scalar field path of `config`; a ValueError naming it if unknown."""
    *parents, leaf = path.split(".")
    obj = config
    for i, part in enumerate(parents):
        names = {f.name for f in dataclasses.fields(obj)}
        sub = getattr(obj, part, None) if part in names else None
        if not dataclasses.is_dataclass(sub):
            prefix = ".".join(parents[: i + 1])
            raise ValueError(
                f"{path}: {prefix} is {'not set in this config' if part in names else 'unknown'}; "
                f"allowed sections: {', '.join(_sections(obj))}"
            )
        obj = sub
    fields = {f.name: f for f in dataclasses.fields(obj)}
    if leaf not in fields or dataclasses.is_dataclass(getattr(obj, leaf)):
        scalar = [n for n in fields if not dataclasses.is_dataclass(getattr(obj, n))]
        raise ValueError(f"{path}: unknown field; allowed {', '.join(scalar)}")
    return parents, leaf, str(fields[leaf].type)


def _typed(kind: str, value: Any) -> Any:
    """`value` as the field's declared type: an int where a float is declared, a list where a tuple is."""
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind.startswith("tuple") and isinstance(value, list):
        return tuple(value)
    return value  # anything else is checked by the config's own validation, which names the field


def assign(config: RunConfig, values: Mapping[str, Any]) -> RunConfig:
    """`config` with typed values set by dotted field path ({"train.lr": 1e-3, "data.sampler.alpha": 0.5,
    "seed": 3}), validated like any config: an unknown path or a bad value is a ValueError naming it."""
    changes: dict[str, Any] = {}
    for path, value in values.items():
        parents, leaf, kind = _field(config, path)
        where = changes
        for part in parents:
            where = where.setdefault(part, {})
        where[leaf] = _typed(kind, value)
    return config.replace(**changes) if changes else config


def override(config: RunConfig, assignments: Iterable[str]) -> RunConfig:
    """Apply 'PATH=VALUE' text assignments (the command line's `--set`), PATH a dotted field path
    (train.lr=1e-3, data.sampler.alpha=0.5, seed=3, train.checkpoint_steps=0,100,200). Values are parsed to
    the field's type, then set with `assign`; an unknown path or an unparsable value is a ValueError naming it."""
    values: dict[str, Any] = {}
    for item in assignments:
        path, eq, text = str(item).partition("=")
        if not eq or not path:
            raise ValueError(f"--set {item!r}: allowed SECTION.FIELD=VALUE, e.g. train.lr=1e-3")
        try:
            _, _, kind = _field(config, path)
        except ValueError as e:
            raise ValueError(f"--set {e}") from None
        try:
            values[path] = _PARSERS[kind](text)
        except (KeyError, ValueError) as e:
            raise ValueError(f"--set {path}={text!r}: not a valid {kind}") from e
    return assign(config, values)
