"""The hook through which a backend gives the core its signatures.

The core decides *when* to sign and what must have been persisted first; the backend
decides *what* a signature bundle is (one ECDSA signature over an EIP-712 digest on EVM, an
ed25519 signature on Solana, commitment + HTLC signatures and a per-commitment point on
Bitcoin) and what a revocation is (nothing on EVM and Solana, where a newer version simply
wins; the previous per-commitment secret on Bitcoin).

Implementations must be pure computation (no I/O): they hold this participant's secret and
whatever per-channel data signing needs.
"""

from __future__ import annotations

from typing import Protocol

from .model import ChannelParams, ChannelState, SignedState


class StateAuthority(Protocol):
    """``previous`` is the fully signed state that ``state`` follows (``None`` for version
    0): backends whose bundles chain from one version to the next (Bitcoin sends its next
    per-commitment point with each bundle) read what they need from its bundles."""

    def sign(
        self, params: ChannelParams, state: ChannelState, previous: SignedState | None
    ) -> bytes:
        """This participant's signature bundle on ``state``."""
        ...

    def verify(
        self,
        params: ChannelParams,
        state: ChannelState,
        signer: int,
        bundle: bytes,
        previous: SignedState | None,
    ) -> bool:
        """Whether ``bundle`` is participant ``signer``'s valid bundle on ``state``."""
        ...

    def revoke(self, params: ChannelParams, signed: SignedState) -> bytes | None:
        """Give up this participant's right to use ``signed`` on-chain; ``None`` if unused."""
        ...

    def verify_revocation(
        self, params: ChannelParams, signed: SignedState, signer: int, revocation: bytes | None
    ) -> bool:
        """Whether ``revocation`` really revokes ``signer``'s copy of ``signed``."""
        ...

    def native_expiry_ok(self, expiry: int, native_expiry: int) -> bool:
        """Whether ``native_expiry`` is a conservative image of unix time ``expiry``."""
        ...


def newer_version_wins(authority: StateAuthority) -> bool:
    """Whether the ledger behind ``authority`` settles a dispute by version alone.

    An authority declares it with a class attribute ``newer_version_wins = True`` (EVM and
    Solana: a registered state is overridden by any fully signed newer one). Then a state
    signed by both is irrevocable for whoever holds it, and an update takes two messages
    (Propose, Accept) instead of three: the Ack, which only carries a revocation, has
    nothing to carry. Absent the attribute, the three-message update is kept (a ledger
    that needs revocations, or one that does not say): never unsafe, only slower.
    """
    return getattr(authority, "newer_version_wins", False) is True
