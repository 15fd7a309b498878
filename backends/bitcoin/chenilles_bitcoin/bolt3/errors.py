"""Exceptions raised by the BOLT 3 library.

One hierarchy so callers (the channel state machine, the watcher) can catch
``Bolt3Error`` at a boundary and still tell the causes apart: a dust output is a
protocol mistake by the proposer, a shachain mismatch proves a peer lied about a
revocation, an invalid signature means the peer's bundle must be rejected.
"""

from __future__ import annotations


class Bolt3Error(Exception):
    """Base class for every error raised by ``chenilles_bitcoin.bolt3``."""


class InvalidKeyError(Bolt3Error, ValueError):
    """A public or private key is malformed or derives to an invalid point/scalar."""


class DustOutputError(Bolt3Error, ValueError):
    """An output would fall below the dust limit where the spec forbids trimming it."""


class NoOutputError(Bolt3Error, ValueError):
    """A transaction would have no output at all: consensus forbids it, no block may hold
    it (every amount went to fees, dust or trimmed HTLCs)."""


class FeeError(Bolt3Error, ValueError):
    """Base class for fee problems."""


class FeeTooHighError(FeeError):
    """The fee computed from the feerate exceeds the caller's limit."""


class UnaffordableFeeError(FeeError):
    """The party that pays the fee does not have enough funds for it."""


class ShachainError(Bolt3Error, ValueError):
    """Base class for per-commitment secret storage errors."""


class RevocationSecretMismatchError(ShachainError):
    """A revealed secret does not derive the earlier secrets: it is not from the same seed."""


class UnknownRevocationSecretError(ShachainError, LookupError):
    """The secret for this index has not been revealed (or cannot be derived) yet."""


class InvalidSignatureError(Bolt3Error, ValueError):
    """A signature is malformed, not low-s, or does not verify."""


class InvalidPreimageError(Bolt3Error, ValueError):
    """A payment preimage is not 32 bytes or does not hash to the payment hash."""
