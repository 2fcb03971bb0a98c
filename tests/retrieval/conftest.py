"""Fixtures for the retrieval tests: the datastore of the tiny packed run (`packed_run`, tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def store(packed_run):
    from workbench.retrieval.datastore import build_datastore

    return build_datastore(packed_run.data)
