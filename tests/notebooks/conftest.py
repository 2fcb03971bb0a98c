"""Fixtures for executing the notebooks: a checkpoints root that already holds the tiny reference run,
and a run-time summary printed at the end of the session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TIMINGS = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def notebook_root(tiny_run_dir, tmp_path_factory) -> Path:
    """A checkpoints root for the notebooks' kernels. Its `tiny-seed0` is a copy of the session's tiny
    run (the same config as `wb.reference_run("tiny")`), so no notebook trains it; every run a notebook
    creates lands here, never in the repository."""
    root = tmp_path_factory.mktemp("notebook-checkpoints")
    shutil.copytree(tiny_run_dir, root / "tiny-seed0")
    return root


@pytest.fixture(scope="session")
def notebook_timings(pytestconfig) -> dict[str, float]:
    """Notebook name -> seconds to execute it; summarised by `pytest_terminal_summary`."""
    return pytestconfig.stash.setdefault(TIMINGS, {})


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    timings = config.stash.get(TIMINGS, {})
    if timings:
        terminalreporter.write_sep("-", "notebook run times (tiny preset)")
        for name, seconds in sorted(timings.items()):
            terminalreporter.write_line(f"{name}: {seconds:.1f} s")
        terminalreporter.write_line(f"total: {sum(timings.values()):.1f} s")
