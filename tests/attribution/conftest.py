"""Fixtures for the attribution tests: a tiny run with dense checkpoints and an attribution of it."""

from __future__ import annotations

import pytest

from workbench.config import preset

WINDOW = (10, 20)  # steps whose sequences are scored; the influence is taken at checkpoint 20
HEAD = (1, 0)  # last layer, head 0


@pytest.fixture(scope="session")
def dense_run(tmp_path_factory):
    """A seeded tiny run (40 steps) with a checkpoint every 5 steps."""
    from workbench.experiment import train
    from workbench.run import load_run

    path = tmp_path_factory.mktemp("runs") / "tiny-dense"
    train(preset("tiny", train={"n_checkpoints": 8}), path, progress=False)
    return load_run(path)


@pytest.fixture(scope="session")
def attribution(dense_run):
    """The attention-measure attribution of head L1H0 over steps [10, 20) of `dense_run`."""
    from workbench.attribution.window import AttributionConfig, attribute

    return attribute(dense_run, AttributionConfig(*HEAD, *WINDOW, fit_size=0), progress=False)
