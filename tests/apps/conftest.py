"""The ``backend`` fixture of the app tests: each ledger that supports apps, embedded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chenilles_hub.backend import ChainBackend

from .onchain import CHAINS, make_backend


@pytest.fixture(scope="module", params=CHAINS)
def backend(request: pytest.FixtureRequest) -> Iterator[ChainBackend]:
    backend = make_backend(request.param)
    yield backend
    close = getattr(backend, "close", None)
    if close is not None:
        close()
