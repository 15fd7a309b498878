"""What a backend author tests with: the conformance suite and its channel driver.

``BackendConformance`` (subclass it, give the ``conformance_backend`` fixture) and ``Duo``
(two real channel machines over any backend). The pytest plugin in ``plugin`` is loaded
by pytest itself through the ``pytest11`` entry point. See docs/writing-a-backend.md.
"""

from __future__ import annotations

from .duo import CHALLENGE, Duo, native
from .suite import REFUSED, BackendConformance, ReorgHook

__all__ = ["CHALLENGE", "REFUSED", "BackendConformance", "Duo", "ReorgHook", "native"]
