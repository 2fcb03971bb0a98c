"""Run a sweep's trials as Ray tasks; each trial trains (or resumes) one ordinary run directory.

Ray core rather than Ray Tune: a trial here is a whole run whose directory is the source of truth
(config, checkpoints, exact resume, metrics); Tune would add its own trial state, checkpoints and
result logs that duplicate, and can disagree with, the run directories. Ray core gives what is
needed and nothing else: resource requests per task (CPUs, fractional GPUs so several small models
share one GPU), scheduling over a local machine or an existing cluster (`address` / `RAY_ADDRESS`),
and failure isolation (a crashing trial is one failed task).

The status of every trial is read from disk, never from the engine: `finished` (its manifest says
so), `failed` (a failure record `<sweep>/failures/<trial>.json` holds the error; retried only on
request), `interrupted` (a run directory that is neither: resumed exactly), `running` (another process
holds its lock: left alone) or `pending` (no run directory yet: trained).
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from workbench.atomic import atomic_write_json, read_json
from workbench.config import RunConfig
from workbench.sweeps.spec import Resources
from workbench.training.rundir import RunDir
from workbench.training.stopping import Stopped

STATUSES = ("finished", "failed", "interrupted", "running", "pending")
RunTrial = Callable[..., Any]  # (config, out, progress=False) -> anything: train or resume one run


@dataclass(frozen=True)
class Trial:
    """One point of a sweep: its name, the values it sets, its validated config and run directory."""

    name: str
    config: RunConfig
    out: Path
    values: Mapping[str, Any] = field(default_factory=dict)


def failure_path(root: Path, trial: Trial) -> Path:
    return Path(root) / "failures" / f"{trial.name}.json"


def read_failure(root: Path, trial: Trial) -> dict | None:
    path = failure_path(root, trial)
    return _json(path) if path.is_file() else None


def trial_status(root: Path, trial: Trial) -> str:
    """One of STATUSES, read from the trial's run directory and failure record."""
    run = RunDir(trial.out)
    if run.exists() and run.manifest()["status"] == "finished":
        return "finished"
    if read_failure(root, trial) is not None:
        return "failed"
    if run.exists() or run.incomplete():
        return "running" if run.locked() else "interrupted"
    return "pending"


def last_step(out: Path) -> int:
    """The newest evaluated step of a run (0 when it has none): progress without loading anything."""
    path = Path(out) / "metrics.csv"
    try:
        lines = path.read_text().strip().splitlines()
        return int(float(lines[-1].split(",", 1)[0])) if len(lines) > 1 else 0
    except (OSError, ValueError):
        return 0


def status_table(root: Path, trials: list[Trial]) -> pd.DataFrame:
    """Every trial's status, evaluated step, steps (the run's own once it exists: a budget may have extended it
    beyond the point's), training wall time so far (`wall_s`, summed over resumes and extensions), error (failed
    ones) and run directory."""
    rows = []
    for t in trials:
        failure = read_failure(root, t) or {}
        status = trial_status(root, t)
        run = RunDir(t.out)
        exists = run.exists()
        rows.append(
            {
                "trial": t.name,
                **dict(t.values),
                "status": status,
                "step": last_step(t.out),
                "steps": run.config().train.steps if exists else t.config.train.steps,
                "wall_s": round(run.manifest().get("wall_s", 0.0), 1) if exists else 0.0,
                "error": failure.get("error", "") if status == "failed" else "",
                "run": str(t.out),
            }
        )
    return pd.DataFrame(rows)


def sweep_cost(table: pd.DataFrame, resources: Resources) -> str:
    """A sweep's compute so far, in one line: every trial's training wall time (`status_table`'s `wall_s`) times
    the CPUs (and GPUs) it requests, in hours."""
    hours = table["wall_s"].sum() / 3600
    started = int((table["wall_s"] > 0).sum())
    gpu = f", {hours * resources.gpus:.2f} GPU-hours" if resources.gpus else ""
    return (
        f"cost so far: {hours * resources.cpus:.2f} CPU-hours{gpu} ({started} of {len(table)} trials started; "
        f"training wall time x {resources.cpus:g} CPU per trial)"
    )


def cap_gpu_memory(fraction: float) -> None:
    """A trial given a fraction of a GPU (resources.gpus < 1) allocates at most that fraction of its memory: Ray
    only sets CUDA_VISIBLE_DEVICES, so without a cap one trial's caching allocator can starve the others on the
    chip (an out-of-memory error in the trial that asks past its share, not in its neighbours)."""
    import torch

    if 0 < fraction < 1 and torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(fraction, 0)


def execute(
    run_trial: RunTrial, config: RunConfig, out: str, failure: str, threads: int, gpu_fraction: float = 0.0
) -> tuple[str, str]:
    """The body of one Ray task: train or resume the run, and record a failure (else clear it)."""
    import torch

    torch.set_num_threads(threads)
    cap_gpu_memory(gpu_fraction)
    record = Path(failure)
    attempts = 1 + (_json(record).get("attempts", 0) if record.is_file() else 0)
    try:
        run_trial(config, out, progress=False)
    except Stopped as e:  # SIGTERM / SIGINT: the run saved its resume point
        return "interrupted", str(e)
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
        record.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            record,
            {
                "error": error,
                "traceback": traceback.format_exc(),
                "attempts": attempts,
                "host": os.uname().nodename,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
        )
        return "failed", error
    record.unlink(missing_ok=True)
    return "finished", ""


def _json(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Ray, connected to `address` (or $RAY_ADDRESS) or started locally on this machine's CPUs, and
    shut down afterwards; a Ray already initialised by the caller is used and left running."""
    import ray

    if ray.is_initialized():
        yield
        return
    given = address or None
    address = address or os.environ.get("RAY_ADDRESS") or None
    kw: dict[str, Any] = {"include_dashboard": False, "logging_level": "ERROR", "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, **kw)
        else:  # a new local instance ("local": never one another process started), no dashboard, a small
            # object store (trials exchange only their status)
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), object_store_memory=100 * 2**20, **kw)
    except Exception as e:  # Ray's start-up failures: ConnectionError, TimeoutError, RuntimeError, bare Exception
        with contextlib.suppress(Exception):
            ray.shutdown()  # whatever half-started
        raise ValueError(ray_start_error(e, address, given)) from e

    try:
        yield
    finally:
        ray.shutdown()


def ray_start_error(e: BaseException, address: str | None, given: str | None) -> str:
    """One line: which Ray failed to start or connect, Ray's first line, and what to do instead."""
    reason = (str(e).strip().splitlines() or [""])[0]
    reason = f"{type(e).__name__}: {reason}" if reason else type(e).__name__
    if address:
        source = "--address" if given else "RAY_ADDRESS"
        return (
            f"sweep: cannot connect to the Ray cluster at {source}={address!r} ({reason}): allowed the address "
            f"of a running cluster (check it with `ray status --address {address}`), or no --address and no "
            f"RAY_ADDRESS for a local Ray on this machine"
        )
    return (
        f"sweep: the local Ray instance did not start ({reason}): check this machine's free memory, CPUs and "
        f"/tmp space, or stop leftover Ray processes (`ray stop`); or give --address HOST:PORT (or RAY_ADDRESS) "
        f"of a running cluster"
    )


def run_trials(
    root: str | Path,
    trials: list[Trial],
    run_trial: RunTrial,
    resources: Resources = Resources(),
    address: str | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    spec: dict | None = None,
) -> pd.DataFrame:
    """Train every trial that needs it as a Ray task, with a progress bar over their training steps;
    finished (and, unless `retry_failed`, failed or running) trials are skipped. Resources a trial asks for
    but the Ray cluster does not have are refused before anything is written; then the plan (`spec` and
    trials) is written to `<root>/sweep.json`. The status table."""
    root = Path(root)
    rerun = ("pending", "interrupted", "failed") if retry_failed else ("pending", "interrupted")
    todo = [t for t in trials if trial_status(root, t) in rerun]
    if not todo:
        write_plan(root, spec, trials)
        return status_table(root, trials)
    with ray_session(address):
        check_feasible(resources)
        write_plan(root, spec, trials)
        _submit_and_wait(root, todo, run_trial, resources, progress)
    return status_table(root, trials)


def check_feasible(resources: Resources) -> None:
    """ValueError unless the connected Ray cluster has the CPUs and GPUs one trial requests (a task no node
    can hold would wait forever)."""
    import ray

    total = ray.cluster_resources()
    for field_name, key, need in (("resources.cpus", "CPU", resources.cpus), ("resources.gpus", "GPU", resources.gpus)):
        have = total.get(key, 0.0)
        if need > have:
            raise ValueError(
                f"{field_name}={need:g} per trial, but the Ray cluster has {have:g} {key}(s): allowed "
                f"at most {have:g}" + (", or --address of a cluster with GPUs" if key == "GPU" else "")
            )


def _submit_and_wait(root: Path, todo: list[Trial], run_trial: RunTrial, resources: Resources, progress: bool) -> None:
    import ray

    todo = sorted(todo, key=lambda t: -t.config.train.steps)  # longest first: the shortest makespan
    task = ray.remote(execute).options(num_cpus=resources.cpus, num_gpus=resources.gpus, max_retries=0)
    refs = {
        task.remote(
            run_trial, t.config, str(t.out), str(failure_path(root, t)), resources.torch_threads, resources.gpus
        ): t
        for t in todo
    }
    done = {"finished": 0, "failed": 0, "interrupted": 0}
    total = sum(t.config.train.steps for t in todo)
    bar = tqdm(
        total=total,
        initial=sum(min(last_step(t.out), t.config.train.steps) for t in todo),
        unit="step",
        desc=f"sweep {root.name}: {len(todo)} trials",
        disable=not progress,
    )
    try:
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=2.0)
            for ref in ready:
                trial = refs.pop(ref)
                try:
                    status, error = ray.get(ref)
                except Exception as e:  # the worker died (killed, out of memory): the run is resumable
                    status, error = "interrupted", f"{type(e).__name__}: {e}"
                done[status] += 1
                if error and progress:
                    tqdm.write(f"trial {trial.name}: {status}: {error.splitlines()[0]}")
            bar.n = sum(min(last_step(t.out), t.config.train.steps) for t in todo)
            bar.set_postfix(finished=done["finished"], left=len(refs), failed=done["failed"], refresh=False)
            bar.refresh()
    except BaseException:  # Ctrl-C: stop the tasks; their runs stay resumable
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
    finally:
        bar.close()


def write_plan(root: Path, spec: dict | None, trials: list[Trial]) -> None:
    """`<sweep>/sweep.json`: the spec and every trial's name, values and run directory (what the
    analyses read, with each run directory's own config and metrics)."""
    entries = [{"name": t.name, "values": dict(t.values), "run": str(t.out)} for t in trials]
    Path(root).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(root) / "sweep.json", {"spec": spec, "trials": entries})


def read_plan(root: str | Path) -> dict:
    """What `write_plan` wrote; a ValueError naming the folder when it is not a sweep."""
    path = Path(root) / "sweep.json"
    if not path.is_file():
        raise ValueError(f"sweep={str(root)!r} is not a sweep folder (no sweep.json): run the sweep first")
    return read_json(path)
