"""`workbench sweep --address`: the same spec on an existing Ray cluster (a head started here with
`ray start --head --block` on a free localhost port, stopped afterwards, no process left behind)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rayproc import ray_pids, wait_gone

pytestmark = pytest.mark.ray


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_env(token: str) -> dict[str, str]:
    """This environment without RAY_ADDRESS, with the cluster's token (Ray >= 2.59 authenticates clusters)."""
    return {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
    }


@pytest.fixture
def ray_head(tmp_path):
    """A one-node Ray cluster (2 CPUs) on localhost: (address, token). Stopped by signalling the blocking
    `ray start`."""
    ray = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    port, token = free_port(), secrets.token_hex(16)
    before = ray_pids()
    env = client_env(token)
    head = subprocess.Popen(
        [
            ray,
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--num-cpus=2",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert head.poll() is None, "ray start --head exited"
        time.sleep(0.5)
    else:
        pytest.fail("the Ray head did not start within 120 s")
    try:
        yield address, token
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=30)
        assert not wait_gone(ray_pids() - before, timeout_s=60), "processes of the Ray head outlived it"


def test_sweep_on_an_existing_cluster(tmp_path, ray_head):
    address, token = ray_head
    toml = tmp_path / "s.toml"
    toml.write_text(
        f'name = "c"\npreset = "tiny"\nout = "{tmp_path / "c"}"\n[set]\n"train.steps" = 10\n'
        "[grid]\nseed = [0, 1]\n[resources]\ncpus = 1\n"
    )
    env = client_env(token) | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "sweep", str(toml), "--address", address, "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("finished") == 2
    for seed in (0, 1):
        assert (tmp_path / "c" / f"seed{seed}" / "manifest.json").is_file()
    # the cluster outlives the sweep that used it (only a Ray the engine started is shut down)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", int(address.rsplit(":", 1)[1]))) == 0
