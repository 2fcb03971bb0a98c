"""A run directory written by earlier code (tests/fixtures/legacy-run-bc6c7ea, made by make_legacy_run.py at commit
bc6c7ea, killed at step 25) still loads, reports, and resumes to what that code's uninterrupted run gave."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

FIXTURES = Path(__file__).with_name("fixtures")


@pytest.mark.slow  # two reports and a resume: ~15 CPU-seconds
def test_a_run_of_the_previous_code_loads_reports_and_resumes(tmp_path):
    from workbench.config import preset
    from workbench.experiment import resume
    from workbench.run import load_run
    from workbench.viz.report import write_report

    path = shutil.copytree(FIXTURES / "legacy-run-bc6c7ea", tmp_path / "legacy")
    run = load_run(path)
    assert run.config == preset("tiny", data={"vocab_size": 512}, train={"steps": 30, "checkpoint_steps": (0, 20, 30)})
    assert run.status == "failed" and run.metrics["step"].max() == 20 and run.checkpoint_steps == [0, 20]
    assert run.load_model(20).cfg.d_vocab == run.tokenizer.vocab_size
    assert write_report(run).is_file()

    resumed = resume(path, progress=False)
    assert resumed.status == "finished" and resumed.checkpoint_steps == [0, 20, 30]
    before = pd.read_csv(FIXTURES / "legacy-run-bc6c7ea.finished-metrics.csv")
    pd.testing.assert_frame_equal(resumed.metrics[before.columns], before, check_exact=False, rtol=1e-5, atol=1e-6)
    assert write_report(resumed).is_file()
