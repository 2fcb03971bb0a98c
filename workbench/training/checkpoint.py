"""Checkpoints: safetensors weights and optimizer state, written atomically, verified on load.

Loading never runs code: weights and optimizer tensors are safetensors, everything else JSON.
The study's schedule (docs/method.md §3): every 125 steps up to step 2,000 plus 32 evenly spaced over a 16k-step run,
scaled proportionally for shorter or longer runs (step 0, the untrained model, is always kept).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from workbench.atomic import atomic_path, os_error, sha256

STUDY_STEPS = 16_000


def study_checkpoint_steps(steps: int) -> tuple[int, ...]:
    """Every 125/16k of the run up to 2k/16k of it, plus 32 evenly spaced, plus step 0."""
    scale = steps / STUDY_STEPS
    early = {round(125 * k * scale) for k in range(17)}
    late = {round(steps * k / 32) for k in range(1, 33)}
    return tuple(sorted(s for s in early | late | {0, steps} if 0 <= s <= steps))


def scheduled_steps(cfg) -> tuple[int, ...]:
    """The steps a run saves checkpoints at, for a `TrainConfig` (not its learning-rate `schedule`): its
    explicit list (steps past the end dropped), else `n_checkpoints` evenly spaced intervals, else the study's
    checkpoint steps; the last step is always saved."""
    if cfg.checkpoint_steps:
        steps = {s for s in cfg.checkpoint_steps if s <= cfg.steps}
    elif cfg.n_checkpoints:
        steps = {round(cfg.steps * k / cfg.n_checkpoints) for k in range(cfg.n_checkpoints + 1)}
    else:
        steps = set(study_checkpoint_steps(cfg.steps))
    return tuple(sorted(steps | {cfg.steps}))


_SAFETENSORS_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def save_file(tensors: dict[str, torch.Tensor], filename: str, metadata: dict[str, str] | None = None) -> str:
    """Write `tensors` (contiguous, on CPU) as a safetensors file and return its sha256, computed from the bytes as
    they are written: no serialised copy in memory, no re-read. The layout is the safetensors format (an 8-byte
    little-endian header length, a JSON header padded with spaces to 8 bytes, the tensors' bytes in order), so
    safetensors loads it; other dtypes fall back to safetensors' own serialisation."""
    if any(t.dtype not in _SAFETENSORS_DTYPES for t in tensors.values()):
        data = save(tensors, metadata=metadata)
        with open(filename, "wb") as f:
            f.write(data)
        return hashlib.sha256(data).hexdigest()
    header: dict = {"__metadata__": dict(metadata)} if metadata else {}
    offset, order = 0, sorted(tensors)
    for name in order:
        t = tensors[name]
        n = t.numel() * t.element_size()
        header[name] = {
            "dtype": _SAFETENSORS_DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + n],
        }
        offset += n
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    h = hashlib.sha256()
    with open(filename, "wb") as f:
        for chunk in (len(head).to_bytes(8, "little"), head):
            h.update(chunk)
            f.write(chunk)
        for name in order:
            t = tensors[name]
            if t.numel():
                chunk = memoryview(t.reshape(-1).view(torch.uint8).numpy())
                h.update(chunk)
                f.write(chunk)
    return h.hexdigest()


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> str:
    """Atomic safetensors write; returns the file's sha256. A failed write (a full disk: ENOSPC) is the
    OSError naming `path` (safetensors reports it as a SafetensorError carrying the OS error code)."""
    with atomic_path(path) as tmp:
        try:
            file_sha256 = save_file(
                {k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata
            )
        except SafetensorError as e:
            code = re.search(r"\(os error (\d+)\)|\bcode: (\d+)", str(e))  # "I/O error: ... (os error 28)"
            if code is None:
                raise
            raise os_error(int(code.group(1) or code.group(2)), path) from e
    return file_sha256


def load_tensors(path: Path, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Read a safetensors file; a missing, truncated or corrupted file -> ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint file {path} does not exist")
    if expected_sha256 is not None and sha256(path) != expected_sha256:
        raise ValueError(f"checkpoint file {path} is corrupted or truncated (sha256 differs from the manifest)")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"checkpoint file {path} is corrupted or truncated: {e}") from e


def load_weights(model: torch.nn.Module, path: Path, expected_sha256: str | None = None) -> None:
    """Load model weights, with a clear error when the file does not fit the model's architecture."""
    tensors = load_tensors(path, expected_sha256)
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    shape = sorted(k for k in set(own) & set(tensors) if own[k].shape != tensors[k].shape)
    if missing or extra or shape:
        detail = "; ".join(
            f"{name}: {v[:4]}"
            for name, v in (("missing", missing), ("unexpected", extra), ("shape mismatch", shape))
            if v
        )
        raise ValueError(f"checkpoint file {path} does not match the model's config ({detail})")
    model.load_state_dict(tensors)


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Flatten an optimizer's state into tensors + JSON metadata (param groups, scalar state)."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": json.dumps(sd["param_groups"]), "scalars": json.dumps(scalars)}


def load_optimizer(optimizer: torch.optim.Optimizer, path: Path, expected_sha256: str | None = None) -> None:
    from safetensors import safe_open

    tensors = load_tensors(path, expected_sha256)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    for key, v in json.loads(meta.get("scalars", "{}")).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
