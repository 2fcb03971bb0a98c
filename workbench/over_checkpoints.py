"""`over_checkpoints(run, name, compute)`: one analysis at a run's checkpoints, with one cache.

The analyses over training (attention metrics, attention stability, localisation, probes, key-value
overwrite) all loop over checkpoints, load models and compute a small frame per step. This module is
that loop. Its cache is `<run>/analysis/<name>.csv`, one row per computed row, keyed by step, the
checkpoint's weights hash (from the manifest) and the computation's params (canonical JSON): re-running
a notebook computes only new or retrained checkpoints or new params, and an interrupted loop keeps the
steps it finished (the file is rewritten atomically after each step).
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from workbench.atomic import atomic_write_csv

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

    from workbench.run import Run

KEY_COLUMNS = ["step", "weights_sha256", "params"]


class Models:
    """`models(step)`: the run's model at a checkpoint (`run.load_model`), loaded on first use and kept
    while it is one of the two most recently asked for: enough to compare a step with a reference."""

    keep = 2

    def __init__(self, run: Run):
        self.run = run
        self._loaded: dict[int, HookedTransformer] = {}  # least recently used first

    def __call__(self, step: int) -> HookedTransformer:
        model = self._loaded.pop(step, None)
        self._loaded[step] = self.run.load_model(step) if model is None else model
        while len(self._loaded) > self.keep:
            del self._loaded[next(iter(self._loaded))]
        return self._loaded[step]


def canonical_params(params: dict | None) -> str:
    """The params as canonical JSON (sorted keys, no spaces; tuples as lists, numpy scalars as numbers)."""

    def default(o):
        if isinstance(o, (np.generic, np.ndarray)):
            return o.tolist()
        raise TypeError(f"params: {o!r} is not JSON-serialisable")

    return json.dumps({} if params is None else params, sort_keys=True, separators=(",", ":"), default=default)


def bound_params(fn: Callable, kwargs: dict, skip: tuple[str, ...] = ("chunk", "progress")) -> dict:
    """The keyword arguments `fn(..., **kwargs)` runs with, defaults filled in, less `skip` (arguments
    that do not change the result): the params of a computation that forwards `kwargs` to `fn`.
    A keyword `fn` does not take is a TypeError, raised here before anything is computed."""
    bound = inspect.signature(fn).bind_partial(**kwargs)
    bound.apply_defaults()
    return {k: v for k, v in bound.arguments.items() if k not in skip}


def model_sha256(model: HookedTransformer) -> str:
    """sha256 of a model's parameters and buffers (names, dtypes, shapes, bytes): a params entry for a
    computation that uses a model from outside the run."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def checked_steps(run: Run, steps) -> list[int]:
    """`steps` (default: every checkpoint of the run) sorted and deduplicated; ValueError unless it is a
    non-empty subset of the run's checkpoint steps."""
    allowed = run.checkpoint_steps
    if steps is None:
        steps = allowed
    steps = list(steps)
    if not steps or any(s not in allowed for s in steps):
        raise ValueError(
            f"steps={steps!r} is out of range: allowed a non-empty subset of the checkpoint steps "
            f"of run {run.path}: {allowed}"
        )
    return sorted({int(s) for s in steps})


def _parse(text: str) -> pd.DataFrame:
    # the python engine parses floats exactly (what to_csv wrote is what comes back)
    return pd.read_csv(io.StringIO(text), engine="python", dtype={"weights_sha256": str, "params": str})


def _read_cache(path: Path) -> pd.DataFrame:
    empty = pd.DataFrame(columns=KEY_COLUMNS)
    if not path.is_file():
        return empty
    try:
        df = _parse(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as e:
        warnings.warn(f"ignoring the unreadable cache {path} (it will be recomputed): {e}", stacklevel=3)
        return empty
    if (
        list(df.columns[:3]) != KEY_COLUMNS
        or df[KEY_COLUMNS].isna().any().any()
        or not pd.api.types.is_integer_dtype(df["step"])
    ):
        warnings.warn(
            f"ignoring the cache {path} (it will be recomputed): its columns are {list(df.columns)}, "
            f"expected {KEY_COLUMNS} first",
            stacklevel=3,
        )
        return empty
    return df


def _add_rows(cache: pd.DataFrame, rows: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The cache with `rows` (one step's, key columns first) replacing that step's rows of the same params."""
    if len(cache) and list(cache.columns) != list(rows.columns):
        warnings.warn(
            f"discarding the cache {path}: its columns are {list(cache.columns)}, the computation's "
            f"{list(rows.columns)}",
            stacklevel=3,
        )
        cache = cache.iloc[:0]
    step, params = rows["step"].iloc[0], rows["params"].iloc[0]
    keep = cache[~((cache["step"] == step) & (cache["params"] == params))]
    return pd.concat([keep, rows], ignore_index=True) if len(keep) else rows


def over_checkpoints(
    run: Run,
    name: str,
    compute: Callable[[int, Models], pd.DataFrame],
    steps: list[int] | None = None,
    params: dict[str, Any] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """`compute(step, models)` at checkpoints of `run` (default: all), cached in <run>/analysis/<name>.csv.

    compute returns one step's rows (at least one, no step column); `models(step)` loads checkpoints
    (see `Models`). `name` and `params` (a small JSON-serialisable dict) identify the computation:
    change one of them when the computation changes. Only the steps whose (step, weights hash, params)
    the cache lacks are computed. An unreadable cache is recomputed, an unwritable run directory is
    not cached (both with a warning). Returns columns step + compute's columns, rows in step order
    (each step's in compute's order); dtypes are what pandas reads back from the CSV (numbers, bools and
    non-numeric strings come back as they went in).
    """
    steps = checked_steps(run, steps)
    key = canonical_params(params)
    sha = {s: run.manifest_entry(s)["sha256"] for s in steps}
    path = run.path / "analysis" / f"{name}.csv"
    cache = _read_cache(path)
    done = set(zip(cache["step"], cache["weights_sha256"], cache["params"]))
    todo = [s for s in steps if (s, sha[s], key) not in done]
    models, writable = Models(run), True
    for s in tqdm(todo, desc=f"{run.name}: {name}", disable=not progress):
        rows = compute(s, models)
        if not len(rows) or set(rows.columns) & set(KEY_COLUMNS):
            raise ValueError(
                f"{name}: compute returned columns {list(rows.columns)} and {len(rows)} rows at "
                f"step {s}: allowed at least one row and none of the columns {KEY_COLUMNS}"
            )
        keys = pd.DataFrame({"step": s, "weights_sha256": sha[s], "params": key}, index=range(len(rows)))
        cache = _add_rows(cache, pd.concat([keys, rows.reset_index(drop=True)], axis=1), path)
        if writable:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_csv(path, cache)
            except OSError as e:
                warnings.warn(f"could not write the cache {path} (results are returned, not cached): {e}", stacklevel=2)
                writable = False
    mine = cache[(cache["params"] == key) & (cache["weights_sha256"] == cache["step"].map(sha))]
    mine = mine.sort_values("step", kind="stable").drop(columns=["weights_sha256", "params"])
    return _parse(mine.to_csv(index=False))  # the same frame and dtypes whether computed now or cached
