"""analysis/gpu_check.py (issue 24 item 7) on CPU: its tiny version runs the loop, the step variants and two Ray
trials, prints one markdown table and writes it (and its JSON), and leaves no Ray process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rayproc import ray_pids, wait_gone

pytestmark = pytest.mark.ray

SCRIPT = Path(__file__).resolve().parents[1] / "analysis" / "gpu_check.py"


def test_the_tiny_device_check_prints_and_writes_its_table(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env |= {"OMP_NUM_THREADS": "1", "WORKBENCH_CHECKPOINTS": str(tmp_path), "CUDA_VISIBLE_DEVICES": ""}
    before = ray_pids()
    out = tmp_path / "check" / "gpu_check.md"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=SCRIPT.parents[1],
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    md = out.read_text()
    assert md in proc.stdout and md.startswith("## Device check (") and "--tiny" in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| measure")]
    assert len(rows) == 9 and all(line.count(" | ") == 2 for line in rows)
    assert "compile refused on CPU" in md and "n/a (CPU)" in md
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["loop"]["tokens_per_s"] > 0 and result["loop"]["checkpoints"] == 4
    assert len(result["ray"]["each_over_solo"]) == 2 and all(x > 0 for x in result["ray"]["each_over_solo"])
    assert {"sdpa", "eager", "plain", "patched"} <= set(result["step"]["median_step_ms"])
    assert not wait_gone(ray_pids() - before), "Ray processes outlived the script"
