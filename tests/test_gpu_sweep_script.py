"""analysis/gpu_sweep.py on its CPU path: two tiny concurrent trials through the sweep engine, a
per-trial table with tokens/s and an aggregate line, finished run directories, and no Ray process left."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rayproc import ray_pids, wait_gone

pytestmark = pytest.mark.ray

SCRIPT = Path(__file__).resolve().parents[1] / "analysis" / "gpu_sweep.py"
STEPS = 10


def test_tiny_cpu_sweep_prints_throughput_and_finishes_its_runs(tmp_path):
    out = tmp_path / "bench"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env |= {"OMP_NUM_THREADS": "1", "WORKBENCH_CHECKPOINTS": str(tmp_path)}
    before = ray_pids()
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--preset",
            "tiny",
            "--steps",
            str(STEPS),
            "--trials",
            "2",
            "--gpus-per-trial",
            "0",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=SCRIPT.parents[1],
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("CPU path") for line in lines), proc.stdout
    header = next(line.split() for line in lines if line.split()[:2] == ["trial", "wall_s"])
    for trial in ("seed0", "seed1"):
        row = next((line.split() for line in lines if line.split()[:1] == [trial]), None)
        assert row is not None and len(row) == len(header), proc.stdout
        assert float(row[header.index("tokens/s")]) > 0 and int(row[header.index("steps")]) == STEPS
        assert row[header.index("MFU")] == "n/a"  # no MFU against a GPU peak on the CPU path
        manifest = json.loads((out / trial / "manifest.json").read_text())
        assert manifest["status"] == "finished" and manifest["last_step"] == STEPS
    assert re.search(
        r"^aggregate: 2 trials \(at most \d+ concurrent\), sweep wall [\d.]+ s, ([\d.]+) tokens/s total",
        proc.stdout,
        re.M,
    ), proc.stdout
    assert not wait_gone(ray_pids() - before), "Ray processes outlived the script"
