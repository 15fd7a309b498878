"""The fee policy the opener's participant key carries, and what an acceptor takes.

Two nodes whose fee options differed could not open a Bitcoin channel together: each built
the transactions both sign with its own options, and the first state failed with "invalid
signature". The opener now proposes the channel's policy in its key (committed to by the
channel id) and the acceptor consents or refuses with the option to change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import msgspec
import pytest
from chenilles_bitcoin.backend import BitcoinBackend
from chenilles_bitcoin.channel_keys import parse_chain_key
from chenilles_bitcoin.commitments import ChannelView
from chenilles_bitcoin.policy import (
    POLICY_BOUNDS,
    ChannelPolicy,
    policy_in_key,
    terms_refusal,
    with_policy,
)
from hypothesis import given
from hypothesis import strategies as st

from chenilles_hub.core import ChannelParams, Participant
from chenilles_hub.core.errors import InvalidParams

from .test_backend_harness import BTC, fresh_backend

pytestmark = pytest.mark.bitcoin

G = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
G2 = "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5"
KEYS = f"{G}:{G2}:{'33' * 16}"
OURS = ChannelPolicy()


@pytest.fixture(name="backend", scope="module")
def _backend() -> Iterator[BitcoinBackend]:
    yield from fresh_backend()


@given(*(st.integers(1, bound) for bound in POLICY_BOUNDS))
def test_a_policy_travels_in_a_key_that_fits_a_participant_and_reads_back(
    feerate: int, dust: int, max_fee: int, interval: int
) -> None:
    policy = ChannelPolicy(feerate, dust, max_fee, interval)
    key = with_policy(KEYS, policy)
    assert len(key) <= 200  # Participant.chain_key's bound
    assert policy_in_key(key) == policy
    Participant(key, bytes(32))  # within the model's bounds


def test_a_key_of_three_parts_carries_none() -> None:
    assert policy_in_key(KEYS) is None


@pytest.mark.parametrize(
    "fields",
    [
        "1000:546:50000",  # three fields
        "1000:546:50000:600:1",  # five
        "01000:546:50000:600",  # a second spelling of 1000
        "-1:546:50000:600",
        "+1:546:50000:600",
        "1e3:546:50000:600",
        "1000:546:50000:",
        "1000:546: 50000:600",
        "1000:５46:50000:600",  # a non-ASCII digit
        "1000:546:50000:0",  # no block interval
        "10000000:546:50000:600",  # above its bound
        "1000:546:1000000000:600",
    ],
)
def test_a_policy_that_is_not_four_small_decimals_is_refused(fields: str) -> None:
    with pytest.raises(ValueError, match=r"policy|above|decimal"):
        policy_in_key(f"{KEYS}:{fields}")


def test_a_channel_whose_opener_key_has_a_bad_policy_is_refused_not_guessed(
    backend: BitcoinBackend,
) -> None:
    """The keys parse, the policy does not: the view refuses the params rather than falling
    back to the backend's options (which would be a policy the peer never proposed)."""
    bad = f"{KEYS}:1000:546:50000:0"
    assert parse_chain_key(bad) == parse_chain_key(KEYS)
    good = with_policy(f"{G2}:{G}:{'44' * 16}", OURS)
    params = ChannelParams(
        chain=BTC.chain,
        participants=(Participant(bad, bytes(32)), Participant(good, b"\x01" * 32)),
        assets=(BTC,),
        challenge_duration=3600,
        nonce=b"\x05" * 32,
    )
    with pytest.raises(InvalidParams, match="bad Bitcoin participant key"):
        ChannelView(params, OURS)
    assert backend.terms_refusal(bad) is not None
    # the acceptor's key is read too, though its policy is not used
    swapped = msgspec.structs.replace(
        params,
        participants=(Participant(good, bytes(32)), Participant(bad, b"\x01" * 32)),
    )
    with pytest.raises(InvalidParams, match="bad Bitcoin participant key"):
        ChannelView(swapped, OURS)


@pytest.mark.parametrize(
    ("offered", "refusal"),
    [
        (OURS, None),
        (dataclasses.replace(OURS, feerate_per_kw=10_000), None),  # the opener pays it
        (dataclasses.replace(OURS, dust_limit_sat=354), None),
        (dataclasses.replace(OURS, max_fee_sat=1_000_000), None),
        (dataclasses.replace(OURS, feerate_per_kw=999), "below this node's 1000 sat/kw"),
        (dataclasses.replace(OURS, feerate_per_kw=10_001), "above 10000 sat/kw"),
        (dataclasses.replace(OURS, dust_limit_sat=547), "outside 354-546 sat"),
        (dataclasses.replace(OURS, dust_limit_sat=353), "outside 354-546 sat"),
        (dataclasses.replace(OURS, block_interval=1), "different networks"),
    ],
)
def test_an_acceptor_takes_the_openers_policy_only_within_its_own(
    offered: ChannelPolicy, refusal: str | None
) -> None:
    reason = terms_refusal(offered, OURS)
    if refusal is None:
        assert reason is None
    else:
        assert reason is not None and refusal in reason and "(option " in reason


def test_the_backend_refuses_the_terms_of_a_key_it_cannot_read_and_takes_a_legacy_key(
    backend: BitcoinBackend,
) -> None:
    assert backend.terms_refusal(with_policy(KEYS, OURS)) is None
    assert backend.terms_refusal(KEYS) is None  # a node of an earlier version: as before
    reason = backend.terms_refusal("not a key")
    assert reason is not None and "bad Bitcoin participant key" in reason
    low = with_policy(KEYS, dataclasses.replace(OURS, feerate_per_kw=500))
    assert "open at 1000 sat/kw or more" in (backend.terms_refusal(low) or "")


@pytest.mark.parametrize(
    "options",
    [
        {"feerate_per_kw": 10_000_000},
        {"max_fee_sat": 10**9},
        {"block_interval": 0},
        {"feerate_per_kw": 2500.0},  # TOML's 2500.0 would travel as "2500.0"
        {"dust_limit_sat": True},
    ],
)
def test_options_no_key_could_carry_stop_the_backend_at_start(options: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=r"above|no channel|whole numbers"):
        next(fresh_backend(**options))
