"""The cap on HTLCs too small for an output (Lightning's ``max_dust_htlc_exposure``).

An HTLC below its trim threshold has no output in an enforcement transaction: if that
transaction is mined, its value goes to fees. A hub that forwarded such an HTLC and whose
peer then closed on-chain has paid downstream what it cannot claim upstream; with no cap a
peer could fill a channel's HTLC slots with them. The core refuses a state that would hold
more of them than the node's cap, except one that holds no more than its predecessor (a cap
lowered by a restart must let the HTLCs above it be settled or failed).
"""

from __future__ import annotations

import hashlib

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chenilles_hub.core import AssetBalances, AssetRules, ChannelRules, Htlc, check_rules
from chenilles_hub.core.errors import DustExposure

from .harness import ETH, Pair

pytestmark = pytest.mark.core

TRIM = (1_209, 1_249)  # Bitcoin's at 1,000 sat/kw: the payer's, the payee's commitment
PARAMS = Pair.create().alice.machine.params
INITIAL = Pair.create().alice.machine.initial


def _state(amounts: list[int], version: int = 1):  # type: ignore[no-untyped-def]
    htlcs = tuple(
        Htlc(
            id=2 * index,
            payer=0,
            asset=ETH,
            amount=amount,
            payment_hash=hashlib.sha256(index.to_bytes(4, "big")).digest(),
            expiry=10**6,
            native_expiry=10**6,
        )
        for index, amount in enumerate(amounts)
    )
    total = 10**9  # check_rules does not ask for conservation: check_successor does
    locked = sum(amounts)
    return msgspec.structs.replace(
        INITIAL,
        version=version,
        balances=(AssetBalances(ETH, (total - locked - 1, 1)),),
        htlcs=htlcs,
    )


def _rules(cap: int | None) -> ChannelRules:
    return ChannelRules((AssetRules(ETH, htlc_trim=TRIM, max_trimmed=cap),))


def test_a_state_past_the_cap_is_refused_and_outputs_do_not_count() -> None:
    rules = _rules(2_500)
    check_rules(PARAMS, rules, _state([1_200, 1_200]), _state([1_200], 0))
    with pytest.raises(DustExposure, match="add up to 3600, above this node's cap of 2500"):
        check_rules(PARAMS, rules, _state([1_200, 1_200, 1_200]), _state([1_200, 1_200], 0))
    # 1,248 sat has an output in its payer's commitment, none in its payee's: it counts
    with pytest.raises(DustExposure):
        check_rules(PARAMS, rules, _state([1_200, 1_248, 1_200]), _state([], 0))
    # HTLCs with an output in both are not at stake
    check_rules(PARAMS, rules, _state([1_200, 1_200, 1_249, 50_000]), _state([], 0))
    check_rules(PARAMS, _rules(None), _state([1_200] * 10), _state([], 0))  # no cap


def test_a_cap_lowered_below_what_is_held_lets_it_be_settled() -> None:
    held = _state([1_200, 1_200, 1_200], 0)
    rules = _rules(1_000)
    check_rules(PARAMS, rules, _state([1_200, 1_200]), held)  # one settled or failed
    check_rules(PARAMS, rules, _state([1_200, 1_200, 1_200, 60_000]), held)  # none added
    with pytest.raises(DustExposure):
        check_rules(PARAMS, rules, _state([1_200, 1_200, 1_200, 5]), held)


@given(
    old=st.lists(st.integers(1, 3_000), max_size=8),
    new=st.lists(st.integers(1, 3_000), max_size=8),
    cap=st.integers(0, 12_000),
)
def test_a_state_is_refused_exactly_when_it_adds_to_an_exposure_past_the_cap(
    old: list[int], new: list[int], cap: int
) -> None:
    def exposure(amounts: list[int]) -> int:
        return sum(a for a in amounts if a < max(TRIM))

    refused = exposure(new) > cap and exposure(new) > exposure(old)
    try:
        check_rules(PARAMS, _rules(cap), _state(new), _state(old, 0))
    except DustExposure:
        assert refused
    else:
        assert not refused
