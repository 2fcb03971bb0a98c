"""One directory per run: config, tokenizer, manifest, metrics and checkpoints, all written atomically.

    checkpoints/<run>/
      config.json  tokenizer.json  manifest.json  metrics.csv  eval_scores.npz
      step_000125.safetensors ...  (weights; the newest also has .optim.safetensors)
"""

from __future__ import annotations

import io
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.config import RunConfig
from workbench.data.tokenizer import BiographyTokenizer
from workbench.atomic import atomic_write_bytes, atomic_write_json
from workbench.training.checkpoint import sha256


# metrics columns of older run directories -> their current names (read transparently)
OLD_COLUMNS = {"train_loss": "training_loss"}


def versions() -> dict[str, str]:
    """Library versions and torch's CPU thread count: a bit-identical rerun needs the same of both
    (float reductions are ordered differently across thread counts, and training is chaotic)."""
    import tokenizers
    import torch
    from importlib.metadata import version

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformer_lens": version("transformer-lens"), "tokenizers": tokenizers.__version__,
            "workbench": version("workbench"), "torch_threads": str(torch.get_num_threads())}


class RunDir:
    """Paths and atomic writers of a run directory (no training logic)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    config_path = property(lambda self: self.path / "config.json")
    tokenizer_path = property(lambda self: self.path / "tokenizer.json")
    manifest_path = property(lambda self: self.path / "manifest.json")
    metrics_path = property(lambda self: self.path / "metrics.csv")
    scores_path = property(lambda self: self.path / "eval_scores.npz")

    def weights_path(self, step: int) -> Path:
        return self.path / f"step_{step:06d}.safetensors"

    def optimizer_path(self, step: int) -> Path:
        return self.path / f"step_{step:06d}.optim.safetensors"

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    @classmethod
    def require(cls, path: str | Path, field: str) -> "RunDir":
        """The run directory a config field names; a ValueError naming the field when it is none."""
        run = cls(path)
        if not run.exists():
            raise ValueError(f"{field}={str(path)!r} is not a run directory (no manifest.json)")
        return run

    # -- creation -----------------------------------------------------------------------------
    def create(self, config: RunConfig, tokenizer: BiographyTokenizer, population_fingerprint: str) -> None:
        if self.exists():
            raise ValueError(f"run directory {self.path} already holds a run; use --resume or another --out")
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.config_path, config.to_dict())
        tokenizer.save(self.tokenizer_path)
        atomic_write_json(self.manifest_path, {
            "run": self.path.name, "status": "created", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "seed": config.seed, "preset": config.preset, "versions": versions(),
            "population_fingerprint": population_fingerprint,
            "tokenizer_sha256": sha256(self.tokenizer_path), "config_sha256": sha256(self.config_path),
            "checkpoints": {}, "last_step": 0, "wall_s": 0.0,
        })

    # -- reading ------------------------------------------------------------------------------
    def manifest(self) -> dict:
        if not self.exists():
            raise ValueError(f"{self.path} is not a run directory (no manifest.json)")
        return json.loads(self.manifest_path.read_text())

    def config(self) -> RunConfig:
        return RunConfig.from_dict(json.loads(self.config_path.read_text()))

    def tokenizer(self) -> BiographyTokenizer:
        m = self.manifest()
        if sha256(self.tokenizer_path) != m["tokenizer_sha256"]:
            raise ValueError(f"tokenizer file {self.tokenizer_path} does not match the run's manifest")
        return BiographyTokenizer.load(self.tokenizer_path)

    def metrics(self) -> pd.DataFrame:
        """metrics.csv; columns of runs written before the vocabulary was unified are renamed on read."""
        if not self.metrics_path.is_file():
            return pd.DataFrame({"step": pd.Series(dtype=int)})
        df = pd.read_csv(self.metrics_path, engine="python")  # float(): exact round trip
        return df.rename(columns={k: v for k, v in OLD_COLUMNS.items() if k in df and v not in df})

    def checkpoint_steps(self) -> list[int]:
        return sorted(int(s) for s in self.manifest()["checkpoints"])

    # -- updates (each one atomic) -------------------------------------------------------------
    def update_manifest(self, **fields) -> dict:
        m = self.manifest()
        m.update(fields)
        atomic_write_json(self.manifest_path, m)
        return m

    def write_metrics(self, rows: list[dict]) -> None:
        buf = io.StringIO()
        pd.DataFrame(rows).to_csv(buf, index=False)
        atomic_write_bytes(self.metrics_path, buf.getvalue().encode())

    def write_scores(self, scores: dict[str, list[np.ndarray]]) -> None:
        buf = io.BytesIO()
        np.savez(buf, **{k: np.stack(v) for k, v in scores.items() if v})
        atomic_write_bytes(self.scores_path, buf.getvalue())

    def read_scores(self) -> dict[str, np.ndarray]:
        if not self.scores_path.is_file():
            return {}
        with np.load(self.scores_path) as f:
            return {k: f[k] for k in f.files}
