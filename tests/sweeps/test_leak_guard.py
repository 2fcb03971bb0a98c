"""The Ray leak guard counts only processes of this test session (another checkout's Ray is not ours)."""

from __future__ import annotations

import os
import subprocess
import sys

from rayproc import SESSION_ENV, ray_pids, wait_gone


def _fake_raylet(tag: str) -> subprocess.Popen:
    env = dict(os.environ, **{SESSION_ENV: tag})
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "raylet"], env=env)


def test_leak_guard_counts_this_sessions_processes_only():
    ours, theirs = _fake_raylet(os.environ[SESSION_ENV]), _fake_raylet("another-checkout")
    try:
        found = ray_pids()
        assert ours.pid in found and theirs.pid not in found
    finally:
        for p in (ours, theirs):
            p.kill()
            p.wait(timeout=10)
    assert not wait_gone({ours.pid}, 5) and ours.pid not in ray_pids()
