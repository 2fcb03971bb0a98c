"""Models of the session's tiny run, loaded once for the probe tests (treat as read-only)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_model(tiny_run):
    """The tiny run's last checkpoint."""
    return tiny_run.load_model()


@pytest.fixture(scope="session")
def tiny_model_init(tiny_run):
    """The tiny run's step-0 checkpoint (the untrained model)."""
    return tiny_run.load_model(0)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """These tests forward many tiny batches: one intra-op thread is much faster than two contending
    with other jobs on a small machine. Restored after each module."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
