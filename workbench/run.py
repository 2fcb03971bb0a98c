"""`load_run(path)`: a run directory as a read-only object for analysis and notebooks.

This view never trains: training entry points live in `workbench.experiment`. It loads
TransformerLens only when a model is asked for, so listing runs and reading metrics stay cheap.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from workbench.config import RunConfig
from workbench.phases import Phases, PlateauRule, detect_phases
from workbench.training.rundir import RunDir

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

    from workbench.data.corpus import BiographyData


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
        """The run's world, tokenizer (the saved one) and sampler, rebuilt from config and seed."""
        from workbench.data.corpus import BiographyData

        data = BiographyData(self.config, tokenizer=self.tokenizer)
        self.dir.check_population(data.world)
        return data

    def nearest_step(self, step: int) -> int:
        return min(self.checkpoint_steps, key=lambda s: abs(s - step))

    def load_model(self, step: int | None = None, device: str = "cpu") -> "HookedTransformer":
        """The model at a checkpoint step (default: the last), in eval mode, ready for run_with_cache, carrying
        the run's tokenizer (`to_str_tokens`, `to_tokens`, `generate` work on text; `workbench.model.attach_tokenizer`)."""
        steps = self.checkpoint_steps
        step = steps[-1] if step is None else step
        if step not in steps:
            raise ValueError(f"step={step} has no checkpoint in run {self.path}: allowed {steps}")
        entry = self.manifest_entry(step)
        from workbench.model import attach_tokenizer, build_model, context_length
        from workbench.training.checkpoint import load_weights

        model = build_model(self.config.model, self.tokenizer.vocab_size,
                            context_length(self.config.model, self.data.max_length), self.config.seed, device)
        load_weights(model, self.path / entry["weights"], entry["sha256"])
        return attach_tokenizer(model, self.tokenizer).eval()

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


def list_runs(root: str | Path = "checkpoints") -> pd.DataFrame:
    """Every run under `root`: name, preset, status, last step, wall time. A run whose manifest says
    `running` but whose lock nobody holds was killed: its status reads `interrupted` (resume it)."""
    rows = []
    for manifest in sorted(Path(root).glob("*/manifest.json")):
        run = RunDir(manifest.parent)
        m = run.manifest()
        status = m.get("status")
        if status == "running" and not run.locked():
            status = "interrupted"
        rows.append({"run": manifest.parent.name, "preset": m.get("preset"), "status": status,
                     "last_step": m.get("last_step"), "checkpoints": len(m.get("checkpoints", {})),
                     "wall_s": round(m.get("wall_s", 0.0), 1), "path": str(manifest.parent)})
    return pd.DataFrame(rows, columns=["run", "preset", "status", "last_step", "checkpoints", "wall_s", "path"])


def checkpoints_root() -> Path:
    """$WORKBENCH_CHECKPOINTS, else the nearest `checkpoints/` folder in the working directory or above."""
    import os

    env = os.environ.get("WORKBENCH_CHECKPOINTS")
    if env:
        return Path(env)
    for d in (Path.cwd(), *Path.cwd().parents):
        if (d / "checkpoints").is_dir():
            return d / "checkpoints"
    return Path("checkpoints")
