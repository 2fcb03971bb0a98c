"""Fixtures for the retrieval tests: a tiny packed run (3 biographies per sequence) and its datastore."""

from __future__ import annotations

import pytest

from workbench.config import preset


@pytest.fixture(scope="session")
def packed_run(tmp_path_factory):
    """A seeded tiny run, 40 steps, k=3 biographies per sequence, q_same=0.5, checkpoints every 10 steps
    (each at an evaluation step)."""
    from workbench.experiment import train
    from workbench.run import load_run

    path = tmp_path_factory.mktemp("runs") / "tiny-packed"
    train(preset("tiny", data={"packing": {"k": 3, "q_same": 0.5}}), path, progress=False)
    return load_run(path)


@pytest.fixture(scope="session")
def store(packed_run):
    from workbench.retrieval.datastore import build_datastore

    return build_datastore(packed_run.data)
