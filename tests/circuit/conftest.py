"""Fixtures shared by the circuit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chenilles_evm.backend import embedded_backend

from .world import World


@pytest.fixture
def world() -> Iterator[World]:
    """One embedded EVM chain (py-evm) and an in-process network of nodes on it."""
    backend = embedded_backend()
    yield World({backend.chain: backend}, backend)
    backend.close()
