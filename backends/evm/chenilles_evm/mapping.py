"""How the chain-agnostic core model maps onto the adjudicator's ABI types.

The core speaks :class:`~chenilles_hub.core.ChannelParams` / ``ChannelState``; the contract
speaks ``Params`` / ``State`` (``eip712.py``). Both parties of a channel must derive exactly
the same contract ``State`` from the same core state, or their signatures would not verify
on-chain, so this mapping is a pure, total function with no options:

- ``Params{participants: chain_key addresses, challengeDuration, nonce, app}``, where
  ``app`` is ``address(0)`` for a payment channel, else the contract address the backend
  bound the channel's app id to (``EvmBackend.use_app``): a channel's params name an app,
  never an address, so a peer cannot pick the contract that judges forced moves.
- ``State{channelId, version, assets (params order), balances[i][p], htlcs, appData,
  isFinal}``, where a core ``Htlc`` becomes a contract ``Htlc`` whose ``expiry`` is the
  core HTLC's ``native_expiry`` (a block timestamp): the value both parties signed is the
  value the contract enforces.
- ``Asset(chain, "native")`` is ETH (contract asset ``address(0)``); any other token is the
  ERC-20 contract's checksummed address.

Anything the contract cannot represent (an id past ``uint64``, a malformed address, an
asset of another chain) raises ``ValueError`` instead of being truncated.
"""

from __future__ import annotations

from collections.abc import Mapping

from eth_typing import ChecksumAddress
from eth_utils.address import is_address, to_checksum_address

from chenilles_hub.core import Asset, AssetBalances, ChannelParams, ChannelState
from chenilles_hub.core import Htlc as CoreHtlc
from chenilles_hub.core.errors import InvalidParams

from .eip712 import ETH, Htlc, Params, State

NATIVE = "native"
UINT64_MAX = 2**64 - 1

__all__ = [
    "NATIVE",
    "app_address",
    "asset_address",
    "asset_of",
    "caip2",
    "checksum",
    "from_state",
    "to_htlc",
    "to_params",
    "to_state",
]


def caip2(chain_id: int) -> str:
    """The CAIP-2 id of an EVM chain: ``eip155:<chain id>``."""
    return f"eip155:{chain_id}"


def checksum(address: str) -> ChecksumAddress:
    """``address`` checksummed; ``ValueError`` if it is not a 20-byte hex address."""
    if not is_address(address):
        raise ValueError(f"not an EVM address: {address!r}")
    return to_checksum_address(address)


def asset_address(asset: Asset, chain: str | None = None) -> str:
    """The contract's address for ``asset``: ``address(0)`` for ETH, else the token."""
    if chain is not None and asset.chain != chain:
        raise ValueError(f"asset {asset} is not on {chain}")
    if asset.token == NATIVE:
        return ETH
    address = checksum(asset.token)
    if int(address, 16) == 0:
        raise ValueError("the zero address is ETH: write it as Asset(chain, 'native')")
    return address


def asset_of(chain: str, address: str) -> Asset:
    """The inverse of :func:`asset_address` (for decoding events)."""
    address = to_checksum_address(address)
    return Asset(chain, NATIVE if int(address, 16) == 0 else address)


def _uint64(what: str, value: int) -> int:
    if not 0 <= value <= UINT64_MAX:
        raise ValueError(f"{what} {value} does not fit the contract's uint64")
    return value


def app_address(params: ChannelParams, apps: Mapping[str, str] | None = None) -> str:
    """The contract of the channel's app: ``address(0)`` without one, else the address
    ``apps`` binds its id to; ``InvalidParams`` for an app not bound on this chain."""
    if not params.app:
        return ETH
    address = (apps or {}).get(params.app)
    if address is None:
        raise InvalidParams(
            f"app {params.app!r} is not usable on {params.chain} (no contract bound to it)"
        )
    return address


def to_params(params: ChannelParams, apps: Mapping[str, str] | None = None) -> Params:
    """The contract ``Params`` of a channel; ``apps`` maps app ids to their contracts."""
    p0, p1 = (checksum(p.chain_key) for p in params.participants)
    return Params(
        participants=(p0, p1),
        challenge_duration=_uint64("challenge duration", params.challenge_duration),
        nonce=params.nonce,
        app=app_address(params, apps),
    )


def to_htlc(htlc: CoreHtlc) -> Htlc:
    """A core HTLC as the contract enforces it: expiry is the signed ``native_expiry``."""
    return Htlc(
        id=_uint64("HTLC id", htlc.id),
        payer=htlc.payer,
        asset=asset_address(htlc.asset),
        amount=htlc.amount,
        payment_hash=htlc.payment_hash,
        expiry=_uint64("HTLC native expiry", htlc.native_expiry),
    )


def to_state(params: ChannelParams, state: ChannelState) -> State:
    """The contract ``State`` both participants sign for core ``state``.

    Assets and balances follow ``params.assets`` (the core's invariants already require
    the state to list exactly those, in that order; reading by asset keeps it total).
    """
    balances: list[tuple[int, int]] = []
    for asset in params.assets:
        amounts = state.free(asset)
        balances.append((amounts[0], amounts[1]))
    return State(
        channel_id=state.channel_id,
        version=_uint64("version", state.version),
        assets=tuple(asset_address(a, params.chain) for a in params.assets),
        balances=tuple(balances),
        htlcs=tuple(to_htlc(h) for h in state.htlcs),
        app_data=state.app_data,
        is_final=state.final,
    )


def from_state(params: ChannelParams, state: State, margin: int) -> ChannelState:
    """The core state a contract ``State`` of this channel stands for (the inverse of
    :func:`to_state`; an HTLC's unix expiry is its native expiry plus ``margin``)."""
    if len(state.balances) != len(params.assets):
        raise ValueError("the state's assets are not the channel's")
    by_address = {asset_address(a, params.chain): a for a in params.assets}
    return ChannelState(
        channel_id=state.channel_id,
        version=state.version,
        balances=tuple(
            AssetBalances(asset, (amounts[0], amounts[1]))
            for asset, amounts in zip(params.assets, state.balances, strict=True)
        ),
        htlcs=tuple(
            CoreHtlc(
                id=h.id,
                payer=h.payer,
                asset=by_address[checksum(h.asset)],
                amount=h.amount,
                payment_hash=h.payment_hash,
                expiry=h.expiry + margin,
                native_expiry=h.expiry,
            )
            for h in state.htlcs
        ),
        app_data=state.app_data,
        final=state.is_final,
    )
