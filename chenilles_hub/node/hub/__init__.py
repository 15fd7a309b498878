"""The hub's logic without an event loop: a :class:`Node` and its collaborators.

``Node`` (``node.py``) is the facade every driver calls: peer messages (``receive``), chain
events (``on_chain_events``), time (``tick``) and the operator's requests. Behind it, each
responsibility has its own module: opening and funding channels (``opening``), proposing
queued updates (``proposals``), payments and forwarding (``payments``), the watcher's
on-chain actions (``chain_actions``) and checkpoints and restore (``persistence``). The
asyncio server (``node.runtime``) and the single-process network (``network``) drive the
same object.
"""

from .node import Node

__all__ = ["Node"]
