"""The Python EIP-712 digest and channel id equal the contract's, for arbitrary states."""

from __future__ import annotations

import pytest
from chenilles_evm.adjudicator import AdjudicatorClient
from chenilles_evm.eip712 import HALF_N, Htlc, Params, State, recover_signer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.evm

_addr = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
_u256 = st.integers(0, 2**256 - 1)
_u64 = st.integers(0, 2**64 - 1)
_b32 = st.binary(min_size=32, max_size=32)
_htlc = st.builds(Htlc, _u64, st.integers(0, 255), _addr, _u256, _b32, _u64)


@st.composite
def _states(draw):
    n = draw(st.integers(0, 3))
    return State(
        channel_id=draw(_b32),
        version=draw(_u64),
        assets=tuple(draw(_addr) for _ in range(n)),
        balances=tuple(
            (draw(_u256), draw(_u256)) for _ in range(draw(st.sampled_from([n, n, n + 1])))
        ),
        htlcs=tuple(draw(st.lists(_htlc, max_size=3))),
        app_data=draw(st.binary(max_size=100)),
        is_final=draw(st.booleans()),
    )


@pytest.fixture
def adj(ledger) -> AdjudicatorClient:
    return AdjudicatorClient.deploy(ledger.w3, ledger.accounts[3].address)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(state=_states(), key=st.integers(1, 2**200))
def test_digest_matches_contract(adj: AdjudicatorClient, state: State, key: int) -> None:
    digest = adj.digest(state)
    assert digest == adj.contract_digest(state)
    pk = key.to_bytes(32, "big")
    sig = adj.sign(state, pk)
    assert int.from_bytes(sig[32:64], "big") <= HALF_N and sig[64] in (27, 28)
    from eth_account import Account

    assert recover_signer(digest, sig) == Account.from_key(pk).address


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(a=_addr, b=_addr, dur=_u64, nonce=_b32, app=_addr)
def test_channel_id_matches_contract(
    adj: AdjudicatorClient, a: str, b: str, dur: int, nonce: bytes, app: str
) -> None:
    p = Params((a, b), dur, nonce, app)
    assert adj.channel_id(p) == adj.contract_channel_id(p)


@settings(max_examples=60, deadline=None)
@given(
    version=st.integers(0, 2**64 - 1),
    amounts=st.lists(st.integers(0, 2**256 - 1), min_size=2, max_size=2),
    n_htlcs=st.integers(0, 3),
    app_data=st.binary(max_size=40),
    final=st.booleans(),
)
def test_the_direct_digest_equals_eth_accounts_typed_data_digest(
    version: int, amounts: list[int], n_htlcs: int, app_data: bytes, final: bool
) -> None:
    from chenilles_evm.eip712 import Htlc, State, state_digest, typed_data_digest

    token = "0x" + "ab" * 20
    htlcs = tuple(
        Htlc(k, k % 2, token, 10**k + 1, bytes([k]) * 32, 1_700_000_000 + k) for k in range(n_htlcs)
    )
    state = State(
        b"\x07" * 32,
        version,
        ("0x" + "00" * 20, token),
        (tuple(amounts), (1, 2)),
        htlcs,
        app_data,
        final,
    )
    adjudicator = "0x" + "5c" * 20
    assert state_digest(state, 31337, adjudicator) == typed_data_digest(state, 31337, adjudicator)
