"""The node's journal stays bounded: every refusal of a peer adds lines to it, so a hostile
peer could otherwise grow a hub's memory by a line per round trip (found by review)."""

from __future__ import annotations

import pytest

from chenilles_hub.identity import NodeIdentity
from chenilles_hub.node.hub.context import MAX_JOURNAL
from chenilles_hub.node.hub.node import Node

pytestmark = pytest.mark.node


def test_the_journal_keeps_its_newest_lines_within_twice_its_bound() -> None:
    node = Node(identity=NodeIdentity(), backends={}, accounts={}, clock=lambda: 0)
    for index in range(5 * MAX_JOURNAL):
        node.ctx.note(f"line {index}")
    assert MAX_JOURNAL <= len(node.journal) <= 2 * MAX_JOURNAL
    assert node.journal[-1] == f"line {5 * MAX_JOURNAL - 1}"
    assert node.journal[-MAX_JOURNAL] == f"line {4 * MAX_JOURNAL}"
