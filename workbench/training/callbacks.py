"""Standard callbacks: evaluation + metrics log, checkpoints + manifest, progress bar."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from workbench.metrics import evaluate, summarize
from workbench.training.checkpoint import optimizer_tensors, save_tensors
from workbench.training.loop import Callback, TrainState, learning_rate
from workbench.data.population import column_prefix
from workbench.training.rundir import RESUME_OPTIMIZER, RESUME_WEIGHTS, RunDir


class Evaluator(Callback):
    """At step 0, every `eval_every` steps and at the end: score fixed evaluation sets, log a row.

    The metrics log (metrics.csv) and per-sequence scores (eval_scores.npz, for bootstrap
    uncertainty) are rewritten atomically after every evaluation, so a crash loses nothing.
    """

    def __init__(self, run: RunDir, device: str):
        self.run, self.device = run, device

    def on_train_start(self, state: TrainState) -> None:
        data = state.data
        self.sets = {column_prefix(group): data.eval_batch(group) for group in data.eval_groups}
        self.rows = [r for r in self.run.metrics().to_dict("records") if r["step"] <= state.step]
        scores = self.run.read_scores()
        keep = scores.get("step", np.zeros(0)) <= state.step
        self.scores = {k: list(v[keep]) for k, v in scores.items()}
        if self._due(state) and not any(r["step"] == state.step for r in self.rows):
            self.evaluate(state)

    @staticmethod
    def _due(state: TrainState) -> bool:
        t = state.config.train
        return state.step == 0 or state.step % t.eval_every == 0 or state.step == t.steps

    def on_step_end(self, state: TrainState) -> None:
        if self._due(state):
            self.evaluate(state)

    def evaluate(self, state: TrainState) -> None:
        cfg = state.config
        model = state.model
        was_training = model.training
        model.eval()
        row = {"step": state.step, "lr": learning_rate(cfg.train, state.step),
               "training_loss": state.loss_sum / state.loss_count if state.loss_count else float("nan"),
               "no_knowledge_baseline": cfg.data.no_knowledge_baseline}
        self.scores.setdefault("step", []).append(np.asarray(state.step))
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device == "cuda"):
            for prefix, batch in self.sets.items():
                s = evaluate(model, batch, cfg.data.attributes)  # patching, when on, is hooked on the model itself
                row.update(summarize(s, cfg.data.attributes, prefix))
                self.scores.setdefault(f"{prefix}loss", []).append(s.loss.mean(1).numpy().astype(np.float32))
                self.scores.setdefault(f"{prefix}correct", []).append(s.correct.mean(1).numpy().astype(np.float32))
        model.train(was_training)
        state.loss_sum, state.loss_count = 0.0, 0
        state.last_metrics = row
        self.rows.append(row)
        self.run.write_metrics(self.rows)
        self.run.write_scores(self.scores)


class Checkpointer(Callback):
    """Weights at every scheduled step; optimizer and loop state with the newest one (for resume).

    A run stopped between scheduled steps (`state.stop`) saves its state as the run's resume point
    (resume.safetensors + resume.optim.safetensors, manifest["resume"]) instead of a checkpoint, so
    the checkpoint list stays the schedule's; the next scheduled checkpoint supersedes it.
    """

    def __init__(self, run: RunDir, steps: tuple[int, ...]):
        self.run, self.steps = run, set(steps)

    def on_train_start(self, state: TrainState) -> None:
        self.t0 = time.time()
        self.wall0 = self.run.manifest().get("wall_s", 0.0)
        self.run.update_manifest(status="running")
        if state.step in self.steps and state.step not in self.run.checkpoint_steps():
            self.save(state)

    def on_step_end(self, state: TrainState) -> None:
        if state.step in self.steps or state.step == state.config.train.steps:
            self.save(state)

    def on_train_end(self, state: TrainState) -> None:
        status = "finished" if state.step >= state.config.train.steps else "stopped"
        if status == "stopped" and str(state.step) not in self.run.manifest()["checkpoints"]:
            self.save(state, resume_point=True)
        self.run.update_manifest(status=status, wall_s=self.wall0 + time.time() - self.t0)

    def _write(self, state: TrainState, weights: Path, optimizer: Path) -> dict:
        opt_t, opt_meta = optimizer_tensors(state.optimizer)
        opt_meta["loop"] = json.dumps({"step": state.step, "loss_sum": state.loss_sum, "loss_count": state.loss_count})
        return {"weights": weights.name, "sha256": save_tensors(weights, state.model.state_dict()),
                "optimizer": optimizer.name, "optimizer_sha256": save_tensors(optimizer, opt_t, opt_meta)}

    def save(self, state: TrainState, resume_point: bool = False) -> None:
        """Files first, then the manifest that points at them, then the files it no longer points at."""
        run, step, m = self.run, state.step, self.run.manifest()
        if resume_point:
            entry = self._write(state, run.path / RESUME_WEIGHTS, run.path / RESUME_OPTIMIZER)
            run.update_manifest(resume={"step": step, **entry}, wall_s=self.wall0 + time.time() - self.t0)
            return
        entry = self._write(state, run.weights_path(step), run.optimizer_path(step))
        ckpts = m["checkpoints"]
        stale = [int(s) for s, e in ckpts.items() if e.get("optimizer") and int(s) != step]
        for s in stale:  # optimizer state travels with the newest checkpoint only
            ckpts[str(s)]["optimizer"] = ckpts[str(s)]["optimizer_sha256"] = None
        ckpts[str(step)] = entry
        superseded = m.get("resume") is not None and m["resume"]["step"] <= step
        run.update_manifest(checkpoints=ckpts, last_step=step, wall_s=self.wall0 + time.time() - self.t0,
                            **({"resume": None} if superseded else {}))
        for s in stale:
            run.optimizer_path(s).unlink(missing_ok=True)
        if superseded:
            for name in (RESUME_WEIGHTS, RESUME_OPTIMIZER):
                (run.path / name).unlink(missing_ok=True)


class Progress(Callback):
    """A tqdm bar: step, training loss, attribute accuracy at the last evaluation, ETA."""

    def __init__(self, enabled: bool = True, desc: str = "train"):
        self.enabled, self.desc = enabled, desc

    def on_train_start(self, state: TrainState) -> None:
        self.bar = tqdm(total=state.config.train.steps, initial=state.step, desc=self.desc,
                        disable=not self.enabled, dynamic_ncols=True, mininterval=1.0)

    def on_step_end(self, state: TrainState) -> None:
        self.bar.update(1)
        if state.step % 10 == 0:
            m = state.last_metrics
            self.bar.set_postfix(loss=f"{state.loss:.3f}", attr_loss=f"{m.get('attribute_loss', float('nan')):.2f}",
                                 acc=f"{m.get('attribute_accuracy', float('nan')):.2f}", refresh=False)

    def on_train_end(self, state: TrainState) -> None:
        self.bar.close()
