"""A channel's EIP-712 state digest straight from core states, its constant parts hashed once.

``eip712.state_digest(mapping.to_state(params, state), ...)`` is what both participants sign
(and what a test checks against the contract's ``hashState``). Going through it builds a
contract ``State`` per state, checksums its asset addresses, and hashes the parts that never
change over a channel's life (its assets' addresses, the domain) or mostly stay the same
(no HTLCs, no app data): some 13 us of a state's 40 us to sign. :class:`StateHasher` takes
the same words in the same order from the core state, with the constant parts kept per
channel; ``tests/evm/test_state_hash.py`` checks it against the composed function.
"""

from __future__ import annotations

from chenilles_hub.core import Asset, ChannelParams, ChannelState, Htlc

from .eip712 import (
    address_word,
    domain_separator,
    htlc_hash,
    keccak,
    state_struct_hash,
    uint_word,
)
from .mapping import UINT64_MAX, asset_address

#: ``keccak256("")``: the hash of an empty HTLC list and of empty app data.
_EMPTY = keccak(b"")


class StateHasher:
    """The digests of one channel's states (its ``params`` on ``chain_id``'s adjudicator).

    Raises ``ValueError`` where ``to_state`` would (an asset of another chain, a version,
    HTLC id or native expiry past ``uint64``), so a state that cannot be signed on-chain is
    neither signed nor accepted here."""

    def __init__(self, params: ChannelParams, chain_id: int, adjudicator: str) -> None:
        self._assets = params.assets
        words = b"".join(address_word(asset_address(a, params.chain)) for a in params.assets)
        self._assets_hash = keccak(words)
        self._prefix = b"\x19\x01" + domain_separator(chain_id, adjudicator.lower())
        #: an HTLC's asset word, by asset (an HTLC names one of the channel's assets)
        self._asset_words: dict[Asset, bytes] = {}

    def digest(self, state: ChannelState) -> bytes:
        version = state.version
        if not 0 <= version <= UINT64_MAX:
            raise ValueError(f"version {version} does not fit the contract's uint64")
        rows = []
        for asset in self._assets:
            amounts = state.free(asset)
            rows.append(keccak(uint_word(amounts[0]) + uint_word(amounts[1])))
        htlcs = _EMPTY
        if state.htlcs:
            htlcs = keccak(b"".join(self._htlc_hash(h) for h in state.htlcs))
        struct_hash = state_struct_hash(
            state.channel_id,
            version,
            self._assets_hash,
            keccak(b"".join(rows)),
            htlcs,
            keccak(bytes(state.app_data)) if state.app_data else _EMPTY,
            state.final,
        )
        return keccak(self._prefix + struct_hash)

    def _htlc_hash(self, htlc: Htlc) -> bytes:
        if not 0 <= htlc.id <= UINT64_MAX:
            raise ValueError(f"HTLC id {htlc.id} does not fit the contract's uint64")
        if not 0 <= htlc.native_expiry <= UINT64_MAX:
            raise ValueError(
                f"HTLC native expiry {htlc.native_expiry} does not fit the contract's uint64"
            )
        asset_word = self._asset_words.get(htlc.asset)
        if asset_word is None:
            asset_word = address_word(asset_address(htlc.asset))
            if len(self._asset_words) < len(self._assets):
                self._asset_words[htlc.asset] = asset_word
        return htlc_hash(
            htlc.id, htlc.payer, asset_word, htlc.amount, htlc.payment_hash, htlc.native_expiry
        )


__all__ = ["StateHasher"]
