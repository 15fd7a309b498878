"""Per-commitment secrets: generation from a seed and compact storage (BOLT 3, Appendix D).

The sender derives secret ``I`` from one seed by flipping bits and hashing, so it
stores 32 bytes for up to 2^48 commitments.  The receiver stores at most 49
secrets: a secret whose index ends in ``b`` zero bits can derive every secret that
shares its prefix.  Inserting a new secret re-derives the stored ones from it,
which proves that the peer's secrets all come from the same seed; a peer that
sends a bogus revocation is caught on the spot rather than when we need to punish.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from .errors import RevocationSecretMismatchError, ShachainError, UnknownRevocationSecretError

#: First index used; commitment number ``n`` uses index ``START_INDEX - n``.
START_INDEX = (1 << 48) - 1
_MAX_BUCKETS = 49


def _check_index(index: int) -> None:
    if not 0 <= index <= START_INDEX:
        raise ShachainError(f"shachain index {index} is outside 0..2^48-1")


def derive_secret(base: bytes, bits: int, index: int) -> bytes:
    """Derive secret ``index`` from ``base``, whose index agrees with ``index`` above ``bits``."""
    value = bytearray(base)
    for bit in range(bits - 1, -1, -1):
        if (index >> bit) & 1:
            value[bit // 8] ^= 1 << (bit % 8)
            value = bytearray(hashlib.sha256(value).digest())
    return bytes(value)


def generate_from_seed(seed: bytes, index: int) -> bytes:
    """BOLT 3 ``generate_from_seed``: the secret with shachain index ``index``."""
    if len(seed) != 32:
        raise ShachainError("seed must be 32 bytes")
    _check_index(index)
    return derive_secret(seed, 48, index)


def per_commitment_secret(seed: bytes, commitment_number: int) -> bytes:
    """Secret for commitment number ``n`` (index ``2^48 - 1 - n``)."""
    return generate_from_seed(seed, START_INDEX - commitment_number)


class ShachainCursor:
    """``generate_from_seed`` for one seed, cheap for an index near the previous one.

    The value after processing bits 47..b depends only on those bits of the index, so the
    cursor keeps each intermediate value of the last derivation and restarts below the
    highest bit where the new index differs. Commitment numbers advance one by one, which
    costs about two hashes instead of up to 48.
    """

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ShachainError("seed must be 32 bytes")
        self._index = -1
        # _after[b]: the value once bits 47..b of self._index are processed; _after[48] = seed
        self._after: list[bytes] = [b""] * 48 + [seed]

    def secret(self, index: int) -> bytes:
        _check_index(index)
        top = 48 if self._index < 0 else (index ^ self._index).bit_length()
        after = self._after
        value = after[top]
        for bit in range(top - 1, -1, -1):
            if (index >> bit) & 1:
                flipped = bytearray(value)
                flipped[bit // 8] ^= 1 << (bit % 8)
                value = hashlib.sha256(flipped).digest()
            after[bit] = value
        self._index = index
        return value

    def commitment_secret(self, commitment_number: int) -> bytes:
        """Secret for commitment number ``n`` (index ``2^48 - 1 - n``)."""
        return self.secret(START_INDEX - commitment_number)


def _trailing_zeros(index: int) -> int:
    """``where_to_put_secret``: number of trailing zero bits (48 for index 0)."""
    for bit in range(48):
        if (index >> bit) & 1:
            return bit
    return 48


@dataclass
class RevocationStore:
    """Compact store of the secrets a peer revealed (at most 49 entries).

    Secrets must arrive in order: ``START_INDEX``, ``START_INDEX - 1``, ... which is
    what the update protocol guarantees (one revocation per new commitment).
    """

    _known: list[tuple[int, bytes]] = field(default_factory=list)  # bucket b -> (index, secret)
    _next_index: int = START_INDEX

    @property
    def next_index(self) -> int:
        """Index of the secret we expect next."""
        return self._next_index

    def insert(self, secret: bytes, index: int) -> None:
        """Store ``secret`` for ``index`` after checking it derives every stored secret.

        Raises :class:`RevocationSecretMismatchError` if it does not (the peer's
        revocation is bogus) and :class:`ShachainError` if it arrives out of order.
        """
        if len(secret) != 32:
            raise ShachainError("per-commitment secret must be 32 bytes")
        _check_index(index)
        if index != self._next_index:
            raise ShachainError(f"expected secret for index {self._next_index}, got {index}")
        bucket = _trailing_zeros(index)
        for b in range(min(bucket, len(self._known))):
            known_index, known_secret = self._known[b]
            if known_index < 0:
                continue
            if derive_secret(secret, bucket, known_index) != known_secret:
                raise RevocationSecretMismatchError(
                    f"secret for index {index} does not derive the secret at index {known_index}"
                )
        if bucket < len(self._known):
            self._known[bucket] = (index, secret)
        else:
            # Buckets fill in order: a secret with b trailing zeros follows those with fewer.
            while len(self._known) < bucket:
                self._known.append((-1, b""))
            self._known.append((index, secret))
        self._next_index = index - 1

    def insert_commitment_secret(self, secret: bytes, commitment_number: int) -> None:
        """Store the secret that revokes commitment ``commitment_number``."""
        self.insert(secret, START_INDEX - commitment_number)

    def get(self, index: int) -> bytes:
        """Secret for ``index``, derived from a stored one; raises if not yet revealed."""
        _check_index(index)
        for b, (known_index, known_secret) in enumerate(self._known):
            if known_index < 0:
                continue
            mask = ~((1 << b) - 1)
            if (index & mask) == known_index:
                return derive_secret(known_secret, b, index)
        raise UnknownRevocationSecretError(f"secret for index {index} has not been revealed")

    def get_commitment_secret(self, commitment_number: int) -> bytes:
        """Secret revoking commitment ``commitment_number``."""
        return self.get(START_INDEX - commitment_number)

    def to_entries(self) -> list[tuple[int, bytes]]:
        """The stored (index, secret) pairs, for persisting the store."""
        return [(i, s) for i, s in self._known if i >= 0]

    @classmethod
    def from_entries(cls, entries: list[tuple[int, bytes]]) -> RevocationStore:
        """Rebuild a store from :meth:`to_entries`, re-checking secrets that derive others."""
        store = cls()
        if not entries:
            return store
        lowest = min(i for i, _ in entries)
        for index, secret in sorted(entries, key=lambda e: _trailing_zeros(e[0])):
            bucket = _trailing_zeros(index)
            for b in range(min(bucket, len(store._known))):
                ki, ks = store._known[b]
                derivable = ki >= 0 and (ki & ~((1 << bucket) - 1)) == index
                if derivable and derive_secret(secret, bucket, ki) != ks:
                    raise RevocationSecretMismatchError(f"stored secret {index} is inconsistent")
            while len(store._known) < bucket:
                store._known.append((-1, b""))
            store._known.append((index, secret))
        store._next_index = lowest - 1
        return store

    def __len__(self) -> int:
        return sum(1 for i, _ in self._known if i >= 0)
