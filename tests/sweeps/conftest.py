"""A local Ray for the sweep tests (two CPUs, no dashboard), shut down after the module; and a check that
no Ray process outlives it."""

from __future__ import annotations

import pytest
from rayproc import ray_pids, wait_gone


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance the engine reuses (it leaves a caller's Ray running); stopped afterwards,
    and every process it started must be gone."""
    import ray

    before = ray_pids()
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
        object_store_memory=100 * 2**20,
    )
    started = ray_pids() - before
    assert started, "ray.init started no process"
    yield
    ray.shutdown()
    assert not wait_gone(started), "Ray processes outlived ray.shutdown()"
