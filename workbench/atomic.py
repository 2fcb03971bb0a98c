"""Atomic file writes: the one helper every artefact of the workbench is written with.

A file is written to a temporary sibling, flushed to disk, then renamed over its destination, so a
reader (or a process killed at any moment) only ever sees the old file or the complete new one.
A failed write removes its temporary file and leaves the destination untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

T = TypeVar("T")

TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; when the block succeeds, it is fsynced and renamed onto
    `path`, otherwise removed. For writers that want a file name (safetensors, savefig)."""
    path = Path(path)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True).encode())


def atomic_write_csv(path: str | os.PathLike, df) -> None:
    """A pandas DataFrame as CSV without its index."""
    atomic_write_text(path, df.to_csv(index=False))


def saved_or_computed(out: Path, marker: str, load: Callable[[Path], T], compute: Callable[[Path], None], config: Any,
                      what: str, hint: str) -> T:
    """A study folder `<run>/<kind>/<name>` (`out`): loaded when its `marker` file exists and its config is
    `config`, an error naming `what` when it holds another; else `compute(tmp)` writes it as `tmp/result`
    in a temporary folder of the run (`.<kind>-*`), renamed onto `out` when complete, so a failed or killed
    computation leaves nothing half-written."""
    if (out / marker).exists():
        saved = load(out)
        if saved.config == config:
            return saved
        raise ValueError(f"{out} holds another {what} config: allowed the same, {hint}")
    with tempfile.TemporaryDirectory(dir=out.parent.parent, prefix=f".{out.parent.name}-") as tmp:
        compute(Path(tmp))
        out.parent.mkdir(exist_ok=True)
        os.replace(Path(tmp) / "result", out)
    return load(out)
