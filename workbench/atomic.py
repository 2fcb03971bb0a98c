"""Atomic file writes: the one helper every artefact of the workbench is written with.

A file is written to a temporary sibling, flushed to disk, then renamed over its destination, so a
reader (or a process killed at any moment) only ever sees the old file or the complete new one.
A failed write removes its temporary file and leaves the destination untouched. `sha256` is how every
manifest fingerprints a file it lists.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

TMP_SUFFIX = ".tmp"


def sha256(path: Path) -> str:
    """The file's sha256 (hex), read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def umask() -> int:
    """The process's umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path` (unique, ending in TMP_SUFFIX); when the block succeeds, it is
    fsynced, given the mode a plain `open()` would (0o666 less the umask: some writers, e.g. safetensors, make
    0600 files), and renamed onto `path`, otherwise removed. For writers that want a file name (safetensors,
    savefig). An OSError of the temporary file (or of no file: a failed f.write) names `path` (ENOSPC: "No
    space left on device")."""
    path = Path(path)
    try:  # a unique name: two processes writing the same file (e.g. a sweep's plan) must not share one
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=TMP_SUFFIX)
    except OSError as e:
        raise os_error(e.errno, path) from e
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno and (e.filename is None or str(e.filename) == str(tmp)):
            raise OSError(e.errno, e.strerror or os.strerror(e.errno), str(path)) from e
        raise


def os_error(code: int, path: str | os.PathLike) -> OSError:
    """The OSError (its errno subclass) a failed write of `path` with errno `code` raises."""
    return OSError(code, os.strerror(code), str(path))


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file the workbench wrote; a one-line ValueError naming it when it is not valid JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes())
    except json.JSONDecodeError as e:
        why = f"{e.msg.removesuffix(' at')} at line {e.lineno} column {e.colno}"
    except UnicodeDecodeError as e:
        why = f"not UTF-8 text at byte {e.start}"
    raise ValueError(
        f"{path} is not valid JSON ({why}): allowed the file as the workbench wrote it (restore it, or remove the run)"
    )


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


def saved_or_computed(
    out: Path,
    marker: str,
    load: Callable[[Path], T],
    compute: Callable[[Path], None],
    config: Any,
    what: str,
    hint: str,
) -> T:
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
