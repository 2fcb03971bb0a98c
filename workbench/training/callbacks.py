"""Standard callbacks: evaluation + metrics log, checkpoints + manifest, progress bar."""

from __future__ import annotations

import json
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch
from tqdm.auto import tqdm

from workbench.data.population import column_prefix
from workbench.metrics import evaluate, summarize
from workbench.training.checkpoint import optimizer_tensors, save_tensors
from workbench.training.loop import Callback, TrainState, autocast, learning_rate
from workbench.training.rundir import RESUME_OPTIMIZER, RESUME_WEIGHTS, RunDir


class Evaluator(Callback):
    """At step 0, every `eval_every` steps and at the end: score fixed evaluation sets, log a row.

    The metrics log (metrics.csv) and per-sequence scores (eval_scores.npz, for bootstrap
    uncertainty) are rewritten atomically after every evaluation, so a crash loses nothing.
    """

    def __init__(self, run: RunDir, device: str, dtype: torch.dtype | None = None):
        self.run, self.device, self.dtype = run, device, dtype  # dtype: the run's autocast precision (None: fp32)

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
        row = {
            "step": state.step,
            "lr": learning_rate(cfg.train, state.step),
            "training_loss": state.loss_sum / state.loss_count if state.loss_count else float("nan"),
            "no_knowledge_baseline": cfg.data.no_knowledge_baseline,
        }
        self.scores.setdefault("step", []).append(np.asarray(state.step))
        with autocast(self.device, self.dtype):
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
    """Weights at every scheduled step; optimizer and loop state (for resume) with every `optimizer_every`-th
    scheduled checkpoint and the last one (0: the last only), only the newest such file kept.

    A run stopped between scheduled steps (`state.stop`) saves its state as the run's resume point
    (resume.safetensors + resume.optim.safetensors, manifest["resume"]) instead of a checkpoint, so
    the checkpoint list stays the schedule's; the next scheduled checkpoint with optimizer state supersedes it.

    The training thread only copies the tensors (a snapshot); files, their sha256 (computed while writing) and the
    manifest are written in order on one background thread (`background=False`: on the training thread), at
    most one checkpoint behind; the run's end, a stop and a failure wait for it. Files are still written
    before the manifest that points at them, each atomically, so a kill at any moment leaves a resumable run.
    """

    def __init__(self, run: RunDir, steps: tuple[int, ...], optimizer_every: int = 1, background: bool = True):
        self.run, self.steps, self.every = run, set(steps), optimizer_every
        self.index = {s: i for i, s in enumerate(sorted(self.steps))}
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="checkpoint") if background else None
        self.pending: Future | None = None
        self.write_s = 0.0  # seconds the training thread spent on checkpoints (snapshots, and waits for the writer)

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
        self.drain()
        entry = self.run.manifest()["checkpoints"].get(str(state.step))
        if status == "stopped" and not (entry and entry.get("optimizer")):  # else the checkpoint is the resume point
            self.save(state, resume_point=True)
            self.drain()
        self.run.update_manifest(status=status, wall_s=self.wall0 + time.time() - self.t0)
        self.close()

    def close(self) -> None:
        """Wait for the writer and end its thread (a failure's path: `drain(quiet=True)` first)."""
        self.drain()
        if self.writer is not None:
            self.writer.shutdown(wait=True)
            self.writer = None

    def drain(self, quiet: bool = False) -> None:
        """Wait for the checkpoint being written; its error is raised here (unless `quiet`)."""
        pending, self.pending = self.pending, None
        if pending is None:
            return
        t = time.perf_counter()
        try:
            pending.result()
        except BaseException:
            if not quiet:
                raise
        finally:
            self.write_s += time.perf_counter() - t

    def with_optimizer(self, step: int, last: bool) -> bool:
        """Whether the checkpoint of `step` carries the optimizer state (a resume can start there)."""
        return last or (self.every > 0 and self.index.get(step, 0) % self.every == 0)

    @staticmethod
    def _snapshot(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}

    def save(self, state: TrainState, resume_point: bool = False) -> None:
        """Snapshot the state now; write it (files, then the manifest, then stale files) in the background."""
        t = time.perf_counter()
        self.drain()
        step = state.step
        weights = self._snapshot(state.model.state_dict())
        optimizer = None
        if resume_point or self.with_optimizer(step, step >= state.config.train.steps):
            opt_t, opt_meta = optimizer_tensors(state.optimizer)
            opt_meta["loop"] = json.dumps({"step": step, "loss_sum": state.loss_sum, "loss_count": state.loss_count})
            optimizer = (self._snapshot(opt_t), opt_meta)
        wall = self.wall0 + time.time() - self.t0
        if self.writer is None:
            self._commit(step, weights, optimizer, resume_point, wall)
        else:
            self.pending = self.writer.submit(self._commit, step, weights, optimizer, resume_point, wall)
        self.write_s += time.perf_counter() - t

    def _commit(self, step: int, weights: dict, optimizer: tuple | None, resume_point: bool, wall: float) -> None:
        run = self.run
        if resume_point:
            entry = {
                "weights": RESUME_WEIGHTS,
                "sha256": save_tensors(run.path / RESUME_WEIGHTS, weights),
                "optimizer": RESUME_OPTIMIZER,
                "optimizer_sha256": save_tensors(run.path / RESUME_OPTIMIZER, *optimizer),
            }
            run.update_manifest(resume={"step": step, **entry}, wall_s=wall)
            return
        entry = {
            "weights": run.weights_path(step).name,
            "sha256": save_tensors(run.weights_path(step), weights),
            "optimizer": None,
            "optimizer_sha256": None,
        }
        if optimizer is not None:
            entry["optimizer"] = run.optimizer_path(step).name
            entry["optimizer_sha256"] = save_tensors(run.optimizer_path(step), *optimizer)
        m = run.manifest()
        ckpts = m["checkpoints"]
        stale = [int(s) for s, e in ckpts.items() if e.get("optimizer") and int(s) != step] if optimizer else []
        for s in stale:  # optimizer state travels with the newest checkpoint that has it only
            ckpts[str(s)]["optimizer"] = ckpts[str(s)]["optimizer_sha256"] = None
        ckpts[str(step)] = entry
        superseded = optimizer is not None and m.get("resume") is not None and m["resume"]["step"] <= step
        run.update_manifest(checkpoints=ckpts, last_step=step, wall_s=wall, **({"resume": None} if superseded else {}))
        for s in stale:
            run.optimizer_path(s).unlink(missing_ok=True)
        if superseded:
            for name in (RESUME_WEIGHTS, RESUME_OPTIMIZER):
                (run.path / name).unlink(missing_ok=True)


class Progress(Callback):
    """A tqdm bar: step; training loss, attribute loss and accuracy at the last evaluation (no per-step read of
    the loss: that would sync the device every step); ETA."""

    def __init__(self, enabled: bool = True, desc: str = "train"):
        self.enabled, self.desc = enabled, desc

    def on_train_start(self, state: TrainState) -> None:
        self.bar = tqdm(
            total=state.config.train.steps,
            initial=state.step,
            desc=self.desc,
            disable=not self.enabled,
            dynamic_ncols=True,
            mininterval=1.0,
        )

    def on_step_end(self, state: TrainState) -> None:
        self.bar.update(1)
        if state.step % 10 == 0:
            m = state.last_metrics
            self.bar.set_postfix(
                loss=f"{m.get('training_loss', float('nan')):.3f}",
                attr_loss=f"{m.get('attribute_loss', float('nan')):.2f}",
                acc=f"{m.get('attribute_accuracy', float('nan')):.2f}",
                refresh=False,
            )

    def on_train_end(self, state: TrainState) -> None:
        self.bar.close()
