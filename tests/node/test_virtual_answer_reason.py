"""A hub's refusal of a virtual channel decodes on the other side, however long the error
(it may quote the requester's numbers, of any size): cut to what a ``VirtualAnswer``
carries (found by review)."""

from __future__ import annotations

import os

import pytest

from chenilles_hub.core.errors import InvalidParams
from chenilles_hub.node.hub.virtual import _refusal
from chenilles_hub.node.net import wire

pytestmark = pytest.mark.node


def test_a_refusal_quoting_a_huge_number_still_decodes() -> None:
    error = InvalidParams(f"rate {10**600} is not this hub's")
    answer = wire.VirtualAnswer(os.urandom(32), False, _refusal(error))
    decoded = wire.decode(wire.encode(answer))
    assert isinstance(decoded, wire.VirtualAnswer)
    assert decoded.reason.startswith("invalid_params: rate 1000")
    assert len(decoded.reason) == wire.MAX_ANSWER_REASON
