"""Tables that know what changed: what is in flight, written and undone key by key.

A hub's HTLCs, forwarding links and preimages in flight grow with its traffic (thousands on
a busy hub). Each event changes a few of them, so each event's work must be a few keys,
not the table: a checkpoint writes the records of the keys that changed
(:meth:`TrackedDict.take_changed`), and a peer's message that fails half-way puts back the
keys it changed (:meth:`TrackedDict.rollback`), where it used to copy every table before
every message and write all of them as one value after every event (a hub holding 1,024
forwards wrote 748 kB per checkpoint, and a payment through it took three times as long).

Reads are the dict's own (no method is overridden for them); every write goes through
``__setitem__`` or :meth:`TrackedDict._delete`, so a subclass can keep an index in step
(:class:`HtlcTable`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, overload

from ...core import Htlc

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")

_MISSING: Any = object()


class TrackedDict(dict[K, V]):
    """A dict that remembers the keys written since :meth:`take_changed` and, between
    :meth:`begin` and :meth:`end`, the value each write replaced (:meth:`rollback`)."""

    __slots__ = ("_changed", "_journal", "_track")

    def __init__(
        self,
        items: Mapping[K, V] | Iterable[tuple[K, V]] = (),
        *,
        track_changes: bool = True,
    ) -> None:
        """``track_changes=False``: a table nothing persists (only undone): its writes are
        journaled, not remembered for a checkpoint."""
        super().__init__()
        self._changed: set[K] = set()
        self._journal: list[tuple[K, Any]] | None = None
        self._track = track_changes
        pairs = items.items() if isinstance(items, Mapping) else items
        for key, value in pairs:
            self[key] = value
        self._changed.clear()  # what it was built with is not a change

    def __reduce__(self) -> tuple[Any, ...]:
        """A copy (``copy``, ``pickle``) is a new table with the same items and nothing
        changed or journaled, never one sharing this one's bookkeeping."""
        return type(self), (list(self.items()),), {"_track": self._track}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._track = state["_track"]

    # --- writes ----------------------------------------------------------------------

    def _note(self, key: K) -> None:
        if self._track:
            self._changed.add(key)
        journal = self._journal
        if journal is not None:
            journal.append((key, dict.get(self, key, _MISSING)))

    def __setitem__(self, key: K, value: V) -> None:
        self._note(key)
        super().__setitem__(key, value)

    def _delete(self, key: K) -> V:
        """Remove a key known to be present and return its value (every removal ends here)."""
        self._note(key)
        return super().pop(key)

    def __delitem__(self, key: K) -> None:
        if key not in self:
            raise KeyError(key)
        self._delete(key)

    @overload
    def pop(self, key: K) -> V: ...
    @overload
    def pop(self, key: K, default: V) -> V: ...
    @overload
    def pop(self, key: K, default: D) -> V | D: ...
    def pop(self, key: K, default: Any = _MISSING) -> Any:
        if key in self:
            return self._delete(key)
        if default is _MISSING:
            raise KeyError(key)
        return default

    def popitem(self) -> tuple[K, V]:
        if not self:
            raise KeyError("popitem(): dictionary is empty")
        key = next(reversed(self))
        return key, self._delete(key)

    def setdefault(self, key: K, default: V = None) -> V:  # type: ignore[assignment]
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *others: Any, **more: V) -> None:
        for key, value in dict(*others, **more).items():
            self[key] = value

    def clear(self) -> None:
        for key in list(self):
            self._delete(key)

    def __ior__(self, other: Any) -> TrackedDict[K, V]:  # type: ignore[override,misc]
        self.update(other)
        return self

    # --- what changed ----------------------------------------------------------------

    def take_changed(self) -> set[K]:
        """The keys written since the last call (their current value, or absence, is what
        to persist), and forget them."""
        changed, self._changed = self._changed, set()
        return changed

    def mark_all_changed(self) -> None:
        """Every key is to be written again (the table came from an older layout)."""
        self._changed.update(self)

    # --- undo ------------------------------------------------------------------------

    def begin(self) -> None:
        """Log the old value of every write from now on (one event that may fail). Not
        nested: a second ``begin`` starts a new journal (a node's savepoints never nest)."""
        self._journal = []

    def end(self) -> None:
        """Keep what was written since :meth:`begin`."""
        self._journal = None

    def rollback(self) -> None:
        """Put back every key written since :meth:`begin`, newest write first. The keys
        stay marked as changed: writing their restored value again is harmless."""
        journal, self._journal = self._journal, None
        for key, old in reversed(journal or ()):
            if old is _MISSING:
                if key in self:
                    self._delete(key)
            else:
                self[key] = old


class HtlcTable(TrackedDict[tuple[bytes, int], Htlc]):
    """HTLCs in flight by (channel id, HTLC id), with the keys of each payment hash: a
    preimage finds the HTLCs it settles, and a resolved HTLC tells whether its preimage is
    still needed, without a walk over every HTLC in flight."""

    __slots__ = ("_by_hash",)

    def __init__(
        self,
        items: Mapping[tuple[bytes, int], Htlc] | Iterable[tuple[tuple[bytes, int], Htlc]] = (),
    ) -> None:
        self._by_hash: dict[bytes, dict[tuple[bytes, int], None]] = {}
        super().__init__(items)

    def __setitem__(self, key: tuple[bytes, int], value: Htlc) -> None:
        old = dict.get(self, key)
        if old is not None:
            self._unindex(key, old)
        super().__setitem__(key, value)
        self._by_hash.setdefault(value.payment_hash, {})[key] = None

    def _delete(self, key: tuple[bytes, int]) -> Htlc:
        htlc = super()._delete(key)
        self._unindex(key, htlc)
        return htlc

    def _unindex(self, key: tuple[bytes, int], htlc: Htlc) -> None:
        keys = self._by_hash.get(htlc.payment_hash)
        if keys is not None:
            keys.pop(key, None)
            if not keys:
                del self._by_hash[htlc.payment_hash]

    def keys_of(self, payment_hash: bytes) -> list[tuple[bytes, int]]:
        """The keys of the HTLCs in flight with ``payment_hash``, oldest first."""
        return list(self._by_hash.get(payment_hash, ()))

    def holds(self, payment_hash: bytes) -> bool:
        """Whether any HTLC in flight has ``payment_hash``."""
        return payment_hash in self._by_hash
