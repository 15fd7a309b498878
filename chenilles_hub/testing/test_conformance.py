"""The suite as a collectable module, for a backend with no test code of its own:
``pytest --pyargs chenilles_hub.testing.test_conformance --chenilles-backend NAME``."""

from __future__ import annotations

from .suite import BackendConformance


class TestConformance(BackendConformance):
    """Runs on the plugin's ``conformance_backend`` (``--chenilles-backend``)."""
