"""The peer wire: bytes in and out of a node.

Length-prefixed frames (``framing``), the authenticated, encrypted handshake
(``handshake``), TCP and in-memory connections (``transport``) and the typed node messages
that travel in them (``wire``). Nothing here knows channels or the store: this room only
turns a peer's bytes into checked messages and back.
"""
