"""One directory per run: config, tokenizer, manifest, metrics and checkpoints, all written atomically.

checkpoints/<run>/
  config.json  tokenizer.json  manifest.json  metrics.csv  eval_scores.npz
  step_000125.safetensors ...  (weights; the newest also has .optim.safetensors)
"""

from __future__ import annotations

import contextlib
import io
import platform
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.atomic import TMP_SUFFIX, atomic_write_bytes, atomic_write_csv, atomic_write_json, read_json, sha256
from workbench.config import MAX_STEPS, RunConfig, check, check_int
from workbench.data.tokenizer import BiographyTokenizer

LOCK_FILE = ".lock"
CREATION_FILES = {"config.json", "tokenizer.json", LOCK_FILE}
RESUME_WEIGHTS, RESUME_OPTIMIZER = "resume.safetensors", "resume.optim.safetensors"

# metrics columns of older run directories -> their current names (read transparently)
OLD_COLUMNS = {"train_loss": "training_loss"}


def versions() -> dict[str, str]:
    """Library versions and torch's CPU thread count: a bit-identical rerun needs the same of both
    (float reductions are ordered differently across thread counts, and training is chaotic)."""
    from importlib.metadata import version

    import tokenizers
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformer_lens": version("transformer-lens"),
        "tokenizers": tokenizers.__version__,
        "workbench": version("workbench"),
        "torch_threads": str(torch.get_num_threads()),
    }


class RunDir:
    """Paths and atomic writers of a run directory (no training logic)."""

    def __init__(self, path: str | Path):
        self.path, self.given = Path(path), str(path)  # `given`: as the user wrote it (for messages)

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

    def incomplete(self) -> bool:
        """A directory left by a kill while its run was being created: no manifest, only creation files."""
        if not self.path.is_dir() or self.exists():
            return False
        names = {p.name for p in self.path.iterdir()}
        return bool(names) and all(n in CREATION_FILES or n.endswith(TMP_SUFFIX) for n in names)

    @classmethod
    def require(cls, path: str | Path, field: str) -> "RunDir":
        """The run directory a config field (or flag) names; a ValueError naming it and what is wrong."""
        run = cls(path)
        if not str(path).strip():
            raise ValueError(f"{field}={str(path)!r}: allowed a run directory path, not an empty string")
        if not run.exists():
            why = (
                "it does not exist"
                if not run.path.exists()
                else "it is a file"
                if not run.path.is_dir()
                else "it is an incomplete run (killed while it was being created): train into it again to replace it"
                if run.incomplete()
                else "it is empty"
                if not any(run.path.iterdir())
                else "it has no manifest.json"
            )
            raise ValueError(f"{field}={str(path)!r} is not a run directory: {why}")
        return run

    # -- creation -----------------------------------------------------------------------------
    def check_new(self) -> None:
        """Refuse, before any compute, a path a new run cannot be written to (one line naming it)."""
        where = f"out={self.given!r}"
        if not self.given.strip():
            raise ValueError(f"{where}: allowed a run directory path, not an empty string")
        for parent in [self.path, *self.path.parents]:
            if parent.exists() and not parent.is_dir():
                what = "is a file" if parent == self.path else f"is under a file ({parent})"
                raise ValueError(f"{where} {what}: allowed a directory path")
        if self.exists():
            raise ValueError(f"{where} already holds a run: use --resume, or another --out")
        if self.path.is_dir() and any(self.path.iterdir()) and not self.incomplete():
            raise ValueError(f"{where} is a non-empty directory that is not a run: allowed a new or empty directory")
        existing = next(p for p in [self.path, *self.path.parents] if p.exists())
        try:  # as root, os.access says yes to read-only directories: try a real write instead
            tempfile.TemporaryFile(dir=existing).close()
        except OSError as e:
            raise ValueError(f"{where} cannot be written: {existing} is not writable ({e.strerror})") from None

    def check_resumable(self, config: RunConfig, longer: bool = False) -> None:
        """Refuse, before any compute, a path that neither a new run of `config` can be written to nor
        holds a run of `config` to skip or resume (one without a checkpoint resumes from step 0), or the same
        run with fewer steps that can be extended to `config`'s (`extension`), or, with `longer`, more steps."""
        if not self.exists():
            self.check_new()
        elif self.config() != config:
            existing = self.config()
            if (
                config.train.steps > existing.train.steps
                and existing.replace(train={"steps": config.train.steps}) == config
            ):
                extension(existing, config.train.steps)  # the same run, longer: resumed as an extension, if allowed
                return
            if (
                longer
                and existing.train.steps > config.train.steps
                and config.replace(train={"steps": existing.train.steps}) == existing
            ):
                return  # the same run extended beyond `config` already (a sweep trial's adaptive budget)
            raise ValueError(f"{self.given} already holds a run with another config; remove it or choose another out")

    @contextlib.contextmanager
    def lock(self) -> Iterator["RunDir"]:
        """Hold the run directory's lock file (creating the directory): one writing process at a time."""
        from filelock import FileLock, Timeout

        try:
            self.path.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(self.path / LOCK_FILE), timeout=0)
            lock.acquire()
        except Timeout:
            raise ValueError(
                f"run directory {self.path} is being written by another process "
                f"(its {LOCK_FILE} is held): wait for it to finish, or choose another --out"
            ) from None
        except OSError as e:
            raise ValueError(f"run directory {self.path} cannot be written ({e.strerror})") from None
        try:
            yield self
        finally:
            lock.release()

    def locked(self) -> bool:
        """True while another process holds the lock (a run in progress, as opposed to a killed one)."""
        from filelock import FileLock, Timeout

        if not (self.path / LOCK_FILE).is_file():
            return False
        try:
            FileLock(str(self.path / LOCK_FILE), timeout=0).acquire().lock.release()
        except Timeout:
            return True
        except OSError:
            return False
        return False

    def create(self, config: RunConfig, tokenizer: BiographyTokenizer, population_fingerprint: str) -> None:
        """Write config, tokenizer and, last, the manifest (whose presence makes the directory a run)."""
        self.check_new()
        for p in self.path.iterdir() if self.path.is_dir() else ():
            if p.name != LOCK_FILE:  # leftovers of a creation killed before its manifest was written
                p.unlink()
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.config_path, config.to_dict())
        tokenizer.save(self.tokenizer_path)
        atomic_write_json(
            self.manifest_path,
            {
                "run": self.path.name,
                "status": "created",
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "seed": config.seed,
                "preset": config.preset,
                "versions": versions(),
                "population_fingerprint": population_fingerprint,
                "tokenizer_sha256": sha256(self.tokenizer_path),
                "config_sha256": sha256(self.config_path),
                "checkpoints": {},
                "last_step": 0,
                "wall_s": 0.0,
            },
        )

    # -- reading ------------------------------------------------------------------------------
    def manifest(self) -> dict:
        """manifest.json; a ValueError naming it when it is not the JSON object the workbench writes."""
        if not self.exists():
            raise ValueError(f"{self.path} is not a run directory (no manifest.json)")
        m = read_json(self.manifest_path)
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("checkpoints"), dict)
            or not isinstance(m.get("status"), str)
        ):
            raise ValueError(
                f"{self.manifest_path} is not a run manifest: allowed a JSON object with status and "
                f"checkpoints, as the workbench writes it (restore it, or remove the run)"
            )
        return m

    def config(self) -> RunConfig:
        """config.json; a ValueError naming it when it is not valid JSON or not a valid config."""
        d = read_json(self.config_path)
        if not isinstance(d, dict):
            raise ValueError(
                f"{self.config_path} is not a run config: allowed a JSON object, as the workbench writes it"
            )
        try:
            return RunConfig.from_dict(d)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{self.config_path}: {_first_line(e)}") from e

    def tokenizer(self) -> BiographyTokenizer:
        m = self.manifest()
        if sha256(self.tokenizer_path) != m["tokenizer_sha256"]:
            raise ValueError(f"tokenizer file {self.tokenizer_path} does not match the run's manifest")
        return BiographyTokenizer.load(self.tokenizer_path)

    def metrics(self) -> pd.DataFrame:
        """metrics.csv; columns of runs written before the vocabulary was unified are renamed on read."""
        if not self.metrics_path.is_file():
            return pd.DataFrame({"step": pd.Series(dtype=int)})
        where = f"{self.metrics_path} is not the metrics table the workbench writes"
        try:
            df = pd.read_csv(self.metrics_path, engine="python")  # float(): exact round trip
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
            raise ValueError(
                f"{where} ({_first_line(e)}): allowed a CSV of numbers with a step column "
                f"(restore it, or remove the run)"
            ) from None
        bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
        if "step" not in df or bad:
            why = "no step column" if "step" not in df else f"column {bad[0]!r} holds text"
            raise ValueError(
                f"{where} ({why}): allowed a CSV of numbers with a step column (restore it, or remove the run)"
            )
        return df.rename(columns={k: v for k, v in OLD_COLUMNS.items() if k in df and v not in df})

    def checkpoint_steps(self) -> list[int]:
        return sorted(int(s) for s in self.manifest()["checkpoints"])

    def check_population(self, population) -> None:
        """The population rebuilt from config.json must be the one the run was trained on."""
        if population.fingerprint() != self.manifest()["population_fingerprint"]:
            raise ValueError(f"run {self.path}: the population rebuilt from config.json differs from the manifest's")

    def resume_point(self) -> dict | None:
        """Where a resumed run continues: the graceful-stop state when it is newer than the newest
        checkpoint (which carries the optimizer), else that checkpoint; None before the first one."""
        m = self.manifest()
        candidates = [{"step": int(s), **e} for s, e in m["checkpoints"].items() if e.get("optimizer")]
        if m.get("resume"):
            candidates.append(m["resume"])
        return max(candidates, key=lambda e: e["step"]) if candidates else None

    # -- updates (each one atomic) -------------------------------------------------------------
    def extend(self, config: RunConfig) -> None:
        """Record that the run continues to `config.train.steps` (`session.extension` validated it): config.json
        rewritten, then the manifest (the extension listed, its config hash updated). A kill between the two leaves
        the longer config.json, which the same `--steps` finds already extended."""
        old = self.config().train.steps
        atomic_write_json(self.config_path, config.to_dict())
        m = self.manifest()
        extensions = [
            *m.get("extensions", []),
            {"from_steps": old, "to_steps": config.train.steps, "at": time.strftime("%Y-%m-%dT%H:%M:%S")},
        ]
        self.update_manifest(extensions=extensions, config_sha256=sha256(self.config_path))

    def update_manifest(self, **fields) -> dict:
        m = self.manifest()
        m.update(fields)
        atomic_write_json(self.manifest_path, m)
        return m

    def write_metrics(self, rows: list[dict]) -> None:
        atomic_write_csv(self.metrics_path, pd.DataFrame(rows))

    def write_scores(self, scores: dict[str, list[np.ndarray]]) -> None:
        buf = io.BytesIO()
        np.savez(buf, **{k: np.stack(v) for k, v in scores.items() if v})
        atomic_write_bytes(self.scores_path, buf.getvalue())

    def read_scores(self) -> dict[str, np.ndarray]:
        if not self.scores_path.is_file():
            return {}
        try:
            with np.load(self.scores_path) as f:
                return {k: f[k] for k in f.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(
                f"{self.scores_path} is not the evaluation scores the workbench writes "
                f"({_first_line(e)}): allowed an .npz archive of arrays (restore it, or remove the run)"
            ) from None


def saved_step(manifest: dict) -> int | None:
    """The newest step whose training state a run saved: its newest checkpoint (`last_step`) or, for a
    run stopped between checkpoints, its resume point; where a resume continues. None before any."""
    saved = [s for s in (manifest.get("last_step"), (manifest.get("resume") or {}).get("step")) if s is not None]
    return max(saved) if saved else None


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def extension(config: RunConfig, steps: int) -> RunConfig:
    """`config` continued to `steps` training steps, or a one-line error: only a run whose learning rate and batches
    up to its end do not depend on its length (a constant schedule, a sampler other than `sequential`) can be
    extended, and then the longer run is exactly the run trained to `steps` from the start."""
    t = config.train
    check_int("--steps", steps, t.steps, MAX_STEPS)
    check(
        t.schedule == "constant",
        "train.schedule",
        "constant to extend a run (a cosine run's learning rate at every "
        "step depends on its length: train a new run of the longer length instead)",
        t.schedule,
    )
    check(
        config.data.sampler.kind != "sequential",
        "data.sampler.kind",
        "a sampler whose draws do not depend on the "
        "run's length to extend a run (sequential visits its groups over the whole run)",
        config.data.sampler.kind,
    )
    return config.replace(train={"steps": steps})
