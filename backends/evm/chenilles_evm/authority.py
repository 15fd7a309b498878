"""The EVM :class:`~chenilles_hub.core.StateAuthority`: what a signature bundle is on EVM.

A bundle is one 65-byte ECDSA signature (``r || s || v``, low ``s``, ``v`` in {27, 28})
over the EIP-712 digest the adjudicator's ``hashState`` computes, with the domain
``{name "Chenilles", version "1", chainId, verifyingContract}``. Binding chain id, adjudicator
address and channel id into the digest is what makes a signature useless on another chain,
deployment or channel. ``verify`` applies the contract's own strict recovery rules, so a
bundle accepted off-chain is a bundle the contract accepts.

There are no revocations on EVM: a newer version simply wins a dispute, so ``revoke``
returns ``None`` and ``verify_revocation`` accepts only ``None``.

Pure computation (no RPC, no clock), as the core requires: everything the digest needs
(chain id, adjudicator address) is fixed when the authority is built.
"""

from __future__ import annotations

from collections.abc import Mapping

from chenilles_hub.core import ChannelParams, ChannelState, SignedState
from chenilles_hub.core.errors import InvalidParams

from .eip712 import DigestSigner, channel_id, recover_address
from .mapping import checksum, to_params
from .state_hash import StateHasher

#: Seconds between an HTLC's unix expiry and its on-chain (block timestamp) expiry. The
#: contract pays the payee only for a preimage revealed at a block timestamp <= the native
#: expiry; block producers may skew timestamps by a few seconds and a node's clock may lag,
#: so the payee's on-chain deadline ends a minute before the time the core reasons with.
DEFAULT_EXPIRY_MARGIN = 60

#: Channel ids an authority remembers (one authority serves all channels of a key).
CHANNEL_ID_CACHE = 4096
#: State digests an authority remembers: a batch of proposals in flight (one per channel)
#: is signed, then verified when the accepts come back.
DIGEST_CACHE = 1024

__all__ = ["DEFAULT_EXPIRY_MARGIN", "EvmAuthority"]


class EvmAuthority:
    """Signs with one participant's secp256k1 key; verifies any participant's bundle.

    ``private_key`` may be ``None`` for a verify-only authority (a watchtower). ``apps``
    maps the app ids channels may name to their contracts (the backend's bindings, shared
    and read at each use, so an app bound later is seen).
    """

    #: The adjudicator settles a dispute by version: a registered state loses to any newer
    #: one signed by both, so updates take two messages (``chenilles_hub.core.authority``).
    newer_version_wins = True

    def __init__(
        self,
        chain_id: int,
        adjudicator: str,
        private_key: bytes | None,
        *,
        margin: int = DEFAULT_EXPIRY_MARGIN,
        apps: Mapping[str, str] | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.apps: Mapping[str, str] = {} if apps is None else apps
        self.adjudicator = checksum(adjudicator)
        self._signer = None if private_key is None else DigestSigner(private_key)
        self.margin = margin
        #: params -> channel id: deriving it hashes the ABI-encoded params, about a quarter
        #: of a signature's cost, and each channel signs thousands of states.
        self._channel_ids: dict[ChannelParams, bytes] = {}
        #: Recent digests by the state object's id (the entry holds the state, so the id is
        #: not reused while it is kept): each side digests every state twice (sign, and
        #: verify the peer's signature on it) and states are immutable. Not only the last
        #: one: a proposer signs a whole batch of channels' states before the accepts of the
        #: first ones come back to be verified.
        self._digests: dict[int, tuple[ChannelParams, ChannelState, bytes]] = {}
        #: params -> the channel's digest of states, its constant parts hashed once
        self._hashers: dict[ChannelParams, StateHasher] = {}

    def channel_id(self, params: ChannelParams) -> bytes:
        cached = self._channel_ids.get(params)
        if cached is None:
            cached = channel_id(self.chain_id, self.adjudicator, to_params(params, self.apps))
            if len(self._channel_ids) >= CHANNEL_ID_CACHE:
                del self._channel_ids[next(iter(self._channel_ids))]  # the oldest entry
            self._channel_ids[params] = cached
        return cached

    def digest(self, params: ChannelParams, state: ChannelState) -> bytes:
        """The contract's ``hashState`` of ``state``: what both participants sign."""
        kept = self._digests.get(id(state))
        if kept is not None and kept[1] is state and kept[0] is params:
            return kept[2]
        hasher = self._hashers.get(params)
        if hasher is None:
            hasher = StateHasher(params, self.chain_id, self.adjudicator)
            if len(self._hashers) >= CHANNEL_ID_CACHE:
                del self._hashers[next(iter(self._hashers))]  # the oldest entry
            self._hashers[params] = hasher
        digest = hasher.digest(state)
        if len(self._digests) >= DIGEST_CACHE:
            del self._digests[next(iter(self._digests))]  # the oldest entry
        self._digests[id(state)] = (params, state, digest)
        return digest

    # --- StateAuthority -----------------------------------------------------------------

    def sign(
        self, params: ChannelParams, state: ChannelState, previous: SignedState | None = None
    ) -> bytes:
        if self._signer is None:
            raise ValueError("this authority holds no key: it can only verify")
        if state.channel_id != self.channel_id(params):
            # Never let a signature leave for a state the contract would file elsewhere.
            raise ValueError("the state's channel id is not the one these params derive")
        return self._signer.sign(self.digest(params, state))

    def verify(
        self,
        params: ChannelParams,
        state: ChannelState,
        signer: int,
        bundle: bytes,
        previous: SignedState | None = None,
    ) -> bool:
        if signer not in (0, 1):
            return False
        try:
            if state.channel_id != self.channel_id(params):
                return False
            expected = _address_bytes(params.participants[signer].chain_key)
            got = recover_address(self.digest(params, state), bundle)
        except (ValueError, KeyError, InvalidParams):  # unmappable: the contract refuses too
            return False
        return got is not None and got == expected

    def revoke(self, params: ChannelParams, signed: SignedState) -> bytes | None:
        return None

    def verify_revocation(
        self, params: ChannelParams, signed: SignedState, signer: int, revocation: bytes | None
    ) -> bool:
        return revocation is None

    def native_expiry(self, expiry: int) -> int:
        """The block timestamp by which a preimage must be revealed on-chain."""
        native = expiry - self.margin
        if native <= 0:
            raise ValueError(f"expiry {expiry} is not after the {self.margin}s margin")
        return native

    def native_expiry_ok(self, expiry: int, native_expiry: int) -> bool:
        """Only the exact image ``expiry - margin`` is safe to accept.

        An earlier native expiry is not "more conservative" for everyone: the contract pays
        the payee only for a reveal at or before it, and refunds the payer right after it,
        so a payer proposing ``native_expiry = 1`` could take the HTLC back at once. The
        image is a deterministic function of ``expiry`` and the protocol margin, so both
        sides compute it and compare.
        """
        return native_expiry > 0 and native_expiry == expiry - self.margin


def _address_bytes(address: str) -> bytes:
    """The 20 bytes of a hex address (checksum not required: the key is ours or the peer's
    as agreed at opening, never user-typed here)."""
    raw = bytes.fromhex(address[2:] if address.startswith(("0x", "0X")) else address)
    if len(raw) != 20:
        raise ValueError(f"not an EVM address: {address!r}")
    return raw
