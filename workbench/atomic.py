"""Atomic file writes: the one helper every artefact of the workbench is written with.

A file is written to a temporary sibling, flushed to disk, then renamed over its destination, so a
reader (or a process killed at any moment) only ever sees the old file or the complete new one.
A failed write removes its temporary file and leaves the destination untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

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
