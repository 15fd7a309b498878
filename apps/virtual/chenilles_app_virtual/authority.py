"""The virtual channel's signer: V runs the ordinary ``ChannelMachine`` with this authority.

A V state is signed as the ledger channels' guarantee checks it (``rules.state_digest``:
V's id, version, both amounts and the final flag, secp256k1), so every state the machine
completes can be shown to either ledger channel as is. What the digest does not cover
cannot be signed: V carries no HTLCs and no app data.
"""

from __future__ import annotations

from chenilles_hub.core import ChannelParams, ChannelState, SignedState
from chenilles_hub.core.errors import InvalidTransition

from . import rules


def vstate_of(state: ChannelState) -> rules.VState:
    if state.htlcs or state.app_data or len(state.balances) != 1:
        raise InvalidTransition("a virtual channel state is one asset, no HTLCs, no app data")
    a = state.balances[0].amounts
    return rules.VState(state.version, (a[0], a[1]), state.final)


def signed_vstate(signed: SignedState) -> rules.VState:
    """A fully signed V state as a guarantee holds it."""
    v = vstate_of(signed.state)
    return rules.VState(v.version, v.amounts, v.final, (signed.signatures[0], signed.signatures[1]))


class VirtualAuthority:
    """``StateAuthority`` for V: ``private_key`` is this end's V key (its address is in
    V's params); no revocation (a newer version wins in the guarantee)."""

    #: Either ledger channel's guarantee takes V's newest state signed by both: updates of
    #: V take two messages (``chenilles_hub.core.authority``).
    newer_version_wins = True

    def __init__(self, private_key: bytes) -> None:
        self._key = private_key
        self.address = rules.address_of(private_key)

    def _digest(self, state: ChannelState) -> bytes:
        v = vstate_of(state)
        return rules.state_digest(state.channel_id, v.version, v.amounts, v.final)

    def sign(
        self, params: ChannelParams, state: ChannelState, previous: SignedState | None
    ) -> bytes:
        return rules.sign_digest(self._key, self._digest(state))

    def verify(
        self,
        params: ChannelParams,
        state: ChannelState,
        signer: int,
        bundle: bytes,
        previous: SignedState | None,
    ) -> bool:
        try:
            digest = self._digest(state)
        except InvalidTransition:
            return False
        who = rules.recover(digest, bundle)
        try:
            key = rules.address_bytes(params.participants[signer].chain_key)
        except ValueError:
            return False
        return who is not None and who == key

    def revoke(self, params: ChannelParams, signed: SignedState) -> bytes | None:
        return None

    def verify_revocation(
        self, params: ChannelParams, signed: SignedState, signer: int, revocation: bytes | None
    ) -> bool:
        return revocation is None

    def native_expiry_ok(self, expiry: int, native_expiry: int) -> bool:
        return False  # no HTLCs in a virtual channel
