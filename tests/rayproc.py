"""Finding the processes of a Ray instance this test session started, so tests can check that none outlives it.

Scoped to this session's process tree by an environment tag: tests/conftest.py sets $WORKBENCH_TEST_SESSION to a
fresh value before anything starts, every process started from the session (a Ray driver's daemons, their workers,
a JupyterLab server's kernels) inherits it, and an orphaned one keeps it. Ray processes of another checkout or
user on the same machine do not carry it and are never counted.
"""

from __future__ import annotations

import os
import time
import uuid

import psutil

RAY_PROCESSES = ("raylet", "gcs_server", "ray::", "dashboard", "log_monitor", "monitor.py", "runtime_env")
SESSION_ENV = "WORKBENCH_TEST_SESSION"
SESSION_TAG = os.environ.setdefault(SESSION_ENV, uuid.uuid4().hex)


def _ours(p: psutil.Process) -> bool:
    try:
        return p.environ().get(SESSION_ENV) == SESSION_TAG
    except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess, OSError):
        return False


def ray_pids() -> set[int]:
    """Processes of a Ray instance (its daemons and workers) started from this test session."""
    found = set()
    for p in psutil.process_iter(["pid", "name", "cmdline"]):
        text = " ".join([p.info["name"] or ""] + (p.info["cmdline"] or []))
        if any(k in text for k in RAY_PROCESSES) and "pytest" not in text and _ours(p):
            found.add(p.info["pid"])
    return found


def wait_gone(pids: set[int], timeout_s: float = 30.0) -> set[int]:
    """The pids of `pids` still alive after up to `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    alive = {p for p in pids if psutil.pid_exists(p)}
    while alive and time.monotonic() < deadline:
        time.sleep(0.5)
        alive = {p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE}
    return alive
