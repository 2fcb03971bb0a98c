"""`load_run(path)`: a run directory as a read-only object for analysis and notebooks.

This view never trains: training entry points live in `workbench.experiment`. It loads
TransformerLens only when a model is asked for, so listing runs and reading metrics stay cheap.
"""

from __future__ import annotations

import numbers
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from workbench.config import RunConfig
from workbench.naming import checkpoints_root  # noqa: F401  (re-exported)
from workbench.phases import Phases, PlateauRule, detect_phases
from workbench.training.rundir import RunDir, saved_step

if TYPE_CHECKING:
    import numpy as np
    from transformer_lens import HookedTransformer

    from workbench.data.biography_data import BiographyData


class Run:
    """A run directory: config, tokenizer, metrics, checkpoints, models and phases."""

    def __init__(self, path: str | Path):
        self.dir = RunDir.require(path, "run")
        self.manifest = self.dir.manifest()
        self.config: RunConfig = self.dir.config()

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, status={self.status!r}, steps={self.checkpoint_steps[-1:]})"

    @property
    def path(self) -> Path:
        return self.dir.path

    @property
    def name(self) -> str:
        return self.dir.path.name

    @property
    def status(self) -> str:
        return self.dir.manifest()["status"]

    @property
    def metrics(self) -> pd.DataFrame:
        """One row per evaluation (step, attribute_loss, attribute_accuracy, heldout_..., baseline...)."""
        return self.dir.metrics()

    @property
    def checkpoint_steps(self) -> list[int]:
        return self.dir.checkpoint_steps()

    @cached_property
    def tokenizer(self):
        return self.dir.tokenizer()

    @cached_property
    def data(self) -> "BiographyData":
        """The run's population, tokenizer (the saved one) and sampler, rebuilt from config and seed."""
        from workbench.data.biography_data import BiographyData

        data = BiographyData(self.config, tokenizer=self.tokenizer)
        self.dir.check_population(data.population)
        return data

    def nearest_step(self, step: int) -> int:
        return min(self.checkpoint_steps, key=lambda s: abs(s - step))

    def load_model(self, step: int | None = None, device: str = "cpu") -> "HookedTransformer":
        """The model at a checkpoint step (default: the last), in eval mode, ready for run_with_cache, carrying the
        run's tokenizer (`to_str_tokens`, `to_tokens`, `generate` work on text; `workbench.model.attach_tokenizer`)."""
        steps = self.checkpoint_steps
        step = steps[-1] if step is None else step
        if isinstance(step, bool) or not isinstance(step, numbers.Integral):
            raise ValueError(
                f"step={step!r}: a step must be an int (got {type(step).__name__} {step!r}): "
                f"allowed a checkpoint step of run {self.path}: {steps}"
            )
        step = int(step)
        if step not in steps:
            raise ValueError(f"step={step} has no checkpoint in run {self.path}: allowed {steps}")
        entry = self.manifest_entry(step)
        from workbench.model import attach_tokenizer, build_model, context_length
        from workbench.training.checkpoint import load_weights

        model = build_model(
            self.config.model,
            self.tokenizer.vocab_size,
            context_length(self.config.model, self.data.max_length),
            self.config.seed,
            device,
        )
        load_weights(model, self.path / entry["weights"], entry["sha256"])
        return attach_tokenizer(model, self.tokenizer).eval()

    def seen_accuracy(self, size: int = 1024, step: int | None = None) -> "np.ndarray":
        """Per-sequence attribute accuracy (the share of its attributes right) of the model at `step` (default: the
        last checkpoint) on `size` biographies of seen individuals: a fresh evaluation set (seed offset 1), apart
        from the small one training reports on, for decisions that one noisy evaluation should not make."""
        from workbench.metrics import evaluate

        batch = self.data.eval_batch("seen", size, seed_offset=1)
        return evaluate(self.load_model(step), batch, self.config.data.attributes).correct.mean(1).numpy()

    def manifest_entry(self, step: int) -> dict:
        return self.dir.manifest()["checkpoints"][str(step)]

    def phases(self, rule: PlateauRule | None = None, n_boot: int = 200) -> Phases:
        """The plateau (start, end, censored) with 95% intervals; definition and `rule` in workbench.phases."""
        scores = self.dir.read_scores()
        if "loss" not in scores:
            raise ValueError(f"run {self.path} has no evaluation scores yet")
        return detect_phases(scores["step"], scores["loss"], self.config.data.no_knowledge_baseline, rule, n_boot)


def load_run(path: str | Path) -> Run:
    return Run(path)


RUN_COLUMNS = ("run", "preset", "status", "last_step", "checkpoints", "wall_s", "path", "error")


def list_runs(root: str | Path = "checkpoints") -> pd.DataFrame:
    """Every run under `root`, one row each:

    * `status`: the manifest's (created / running / stopped / failed / finished); a run whose manifest says
      `running` but whose lock nobody holds was killed: `interrupted` (resume it); a run whose manifest
      cannot be read: `broken`, and `error` says which file and why (the other runs are still listed);
    * `last_step`: the newest step whose training state the run saved, a checkpoint or, for a run stopped
      between checkpoints, its resume point: where `workbench train --resume` continues (its last
      evaluation may be earlier: metrics.csv);
    * `checkpoints`, `wall_s` (training time), `path`, `error` (empty unless broken)."""
    rows = []
    for manifest in sorted(Path(root).glob("*/manifest.json")):
        run = RunDir(manifest.parent)
        try:
            m = run.manifest()
        except (ValueError, OSError) as e:
            rows.append(
                {
                    "run": manifest.parent.name,
                    "status": "broken",
                    "checkpoints": 0,
                    "path": str(manifest.parent),
                    "error": str(e),
                }
            )
            continue
        status = m.get("status")
        if status == "running" and not run.locked():
            status = "interrupted"
        rows.append(
            {
                "run": manifest.parent.name,
                "preset": m.get("preset"),
                "status": status,
                "last_step": saved_step(m),
                "checkpoints": len(m.get("checkpoints", {})),
                "wall_s": round(m.get("wall_s", 0.0), 1),
                "path": str(manifest.parent),
                "error": "",
            }
        )
    return pd.DataFrame(rows, columns=list(RUN_COLUMNS)).astype({"last_step": "Int64"})
