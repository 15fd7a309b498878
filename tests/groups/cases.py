"""Shared by the pure and the differential tests: keys, terms, ledger states, V states."""

from __future__ import annotations

import secrets
from typing import Any

from chenilles_app_virtual import rules
from chenilles_app_virtual.authority import VirtualAuthority

from chenilles_hub.core import (
    Asset,
    AssetBalances,
    ChannelMachine,
    ChannelParams,
    ChannelState,
    Participant,
    Send,
    SignedState,
    Transfer,
)
from chenilles_hub.core.virtual import (
    LedgerTerms,
    VirtualTerms,
    virtual_channel_id,
    virtual_initial,
    virtual_params,
)

ALICE_KEY, BOB_KEY, HUB_KEY, MALLORY_KEY = (secrets.token_bytes(32) for _ in range(4))
ASSET = Asset("eip155:31337", "native")
NOW = 1_700_000_000
APP = rules.VirtualLedgerApp()


def ledger_params(end_key: bytes, hub_index: int) -> ChannelParams:
    keys = [rules.address_of(HUB_KEY), rules.address_of(HUB_KEY)]
    keys[1 - hub_index] = rules.address_of(end_key)
    return ChannelParams(
        chain=ASSET.chain,
        participants=tuple(Participant(k, bytes([i]) * 32) for i, k in enumerate(keys)),
        assets=(ASSET,),
        challenge_duration=100,
        nonce=bytes(32),
        app=rules.APP_ID,
    )


def terms(split: tuple[int, int] = (300, 200), rate: tuple[int, int] = (1, 1)) -> VirtualTerms:
    return VirtualTerms(
        keys=(rules.address_of(ALICE_KEY), rules.address_of(BOB_KEY)),
        node_ids=(b"a" * 32, b"b" * 32),
        hub_node_id=b"h" * 32,
        ledgers=(
            LedgerTerms(b"A" * 32, hub_index=1),
            LedgerTerms(b"B" * 32, hub_index=0, num=rate[0], den=rate[1]),
        ),
        split=split,
        deadline=NOW + 1000,
        grace=300,
        nonce=b"n" * 32,
    )


def ledger_state(balances: tuple[int, int] = (1000, 1000), app_data: bytes = b"") -> ChannelState:
    return ChannelState(
        channel_id=b"A" * 32,
        version=5,
        balances=(AssetBalances(ASSET, balances),),
        app_data=app_data,
    )


def v_states(t: VirtualTerms, pays: list[tuple[int, int]]) -> list[SignedState]:
    """V run by the real machine with both V keys: version 0, then one state per payment."""
    params, vid = virtual_params(t), virtual_channel_id(t)
    machines = [
        ChannelMachine(params, vid, i, VirtualAuthority(k), virtual_initial(t))
        for i, k in enumerate((ALICE_KEY, BOB_KEY))
    ]

    def deliver(sender: int, effects: list[Any]) -> None:
        queue = [(1 - sender, e) for e in effects]
        while queue:
            to, e = queue.pop(0)
            if isinstance(e, Send):
                queue += [(1 - to, x) for x in machines[to].receive(e.message, NOW)]

    deliver(0, machines[0].open())
    out = [machines[0].latest]
    for payer, amount in pays:
        deliver(payer, machines[payer].propose((Transfer(params.assets[0], amount),), NOW))
        out.append(machines[0].latest)
    assert all(s is not None and s.complete for s in out)
    return out  # type: ignore[return-value]
