"""How many HTLCs a Solana channel's state may lock: the number the node plans with
(``htlc_capacity``, the channel's ``max_htlcs`` rule) is exactly what the signed message,
and so one register transaction, can carry."""

from __future__ import annotations

import pytest
from chenilles_solana import program_client as pc
from chenilles_solana.authority import htlc_capacity, state_message
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from chenilles_hub.core import Asset, AssetBalances, ChannelParams, ChannelState, Htlc, Participant
from chenilles_hub.core.errors import TooManyHtlcs

pytestmark = pytest.mark.solana

CHAIN = "solana:localnet"


def _params(assets: int, app: bool) -> ChannelParams:
    tokens = ["native", *(str(Pubkey.new_unique()) for _ in range(assets - 1))]
    return ChannelParams(
        chain=CHAIN,
        participants=tuple(
            Participant(str(Keypair().pubkey()), bytes([i + 1]) * 32) for i in range(2)
        ),
        assets=tuple(Asset(CHAIN, token) for token in tokens),
        challenge_duration=600,
        nonce=b"\x00" * 32,
        app="counter" if app else "",
    )


def _state(params: ChannelParams, htlcs: int) -> ChannelState:
    return ChannelState(
        channel_id=b"\x11" * 32,
        version=1,
        balances=tuple(AssetBalances(asset, (10**6, 0)) for asset in params.assets),
        htlcs=tuple(
            Htlc(i, 0, params.assets[0], 1, bytes([i]) * 32, 2_000_000_000, 2_000_000_000)
            for i in range(htlcs)
        ),
        app_data=b"\x00" * pc.MAX_APP_DATA if params.app else b"",
    )


@pytest.mark.parametrize("app", [False, True], ids=["payment", "app"])
@pytest.mark.parametrize("assets", [1, 2, 3, 4])
def test_the_capacity_is_the_most_htlcs_a_signed_message_carries(assets: int, app: bool) -> None:
    params = _params(assets, app)
    capacity = htlc_capacity(params)
    program = Pubkey.new_unique()
    state_message(program, params, _state(params, capacity))  # fits
    with pytest.raises(TooManyHtlcs):
        state_message(program, params, _state(params, capacity + 1))
    if not app:
        assert capacity == (8 if assets <= 3 else 7)  # docs/solana.md
