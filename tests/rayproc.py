"""Finding the processes of a Ray instance, so tests can check that none outlives it."""

from __future__ import annotations

import time

import psutil

RAY_PROCESSES = ("raylet", "gcs_server", "ray::", "dashboard", "log_monitor", "monitor.py", "runtime_env")


def ray_pids() -> set[int]:
    """Processes of a Ray instance (its daemons and workers) on this machine."""
    found = set()
    for p in psutil.process_iter(["pid", "name", "cmdline"]):
        text = " ".join([p.info["name"] or ""] + (p.info["cmdline"] or []))
        if any(k in text for k in RAY_PROCESSES) and "pytest" not in text:
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
