"""The EVM ChainBackend's surface: chain description, mapping, authority, errors, plugin."""

from __future__ import annotations

import hashlib
import secrets

import pytest
from chenilles_evm.authority import EvmAuthority
from chenilles_evm.backend import GAS_ESTIMATES, EvmBackend
from chenilles_evm.mapping import to_params, to_state
from chenilles_evm.plugin import EvmBackendFactory

from chenilles_hub.backend import ChainBackend, LedgerError
from chenilles_hub.core import (
    Asset,
    AssetBalances,
    ChannelMachine,
    ChannelParams,
    ChannelState,
    Close,
    Htlc,
    Participant,
    Propose,
    SignedState,
    Transfer,
    initial_state,
)
from chenilles_hub.core.errors import InvalidSignature

from .test_backend_channel import (  # noqa: F401  (fixture)
    ETH,
    already_paid,
    backend,
    open_channel,
)

pytestmark = pytest.mark.evm


def _params(b: EvmBackend, keys: tuple[str, str], assets: tuple[Asset, ...]) -> ChannelParams:
    return ChannelParams(
        chain=b.chain,
        participants=tuple(Participant(k, secrets.token_bytes(32)) for k in keys),
        assets=assets,
        challenge_duration=100,
        nonce=b.new_nonce((), {}, None),  # type: ignore[arg-type]
    )


def test_describes_its_chain(backend: EvmBackend) -> None:  # noqa: F811
    assert isinstance(backend, ChainBackend)
    assert backend.chain == f"eip155:{backend.w3.eth.chain_id}"
    assert backend.info.name == "evm" and backend.info.chains == (backend.chain,)
    eth, token = backend.assets()
    assert eth == Asset(backend.chain, "native")
    assert token.chain == backend.chain and token.token == backend.w3.to_checksum_address(
        token.token
    )
    tm = backend.time_model()
    assert (tm.block_interval_ms, tm.finality_depth, tm.inclusion_delay) == (12_000, 2, 60)
    assert tm.timelock_horizon >= 365 * 86400
    price = backend.w3.eth.gas_price
    assert backend.estimate_fee("register") == GAS_ESTIMATES["register"] * price
    with pytest.raises(ValueError):
        backend.estimate_fee("teleport")
    assert backend.native_expiry(1_700_000_000) == 1_700_000_000 - 60

    before = backend.now()
    backend.advance_time(500)
    assert backend.now() >= before + 500

    fresh = backend.create_account()
    assert backend.balance(fresh, eth) == 100 * ETH  # exact wei, nothing spent on it
    assert backend.balance(fresh, token) == 10**24
    empty = backend.create_account(fund=False)
    assert backend.balance(empty, eth) == 0 == backend.balance(empty, token)
    assert backend.participant_key(fresh, b"\x00" * 32) == fresh.address
    n1, n2 = backend.new_nonce((), {}, fresh), backend.new_nonce((), {}, fresh)
    assert len(n1) == 32 and n1 != n2


def test_channel_id_and_digest_match_the_contract(backend: EvmBackend) -> None:  # noqa: F811
    eth, token = backend.assets()
    a, b = backend.create_account(fund=False), backend.create_account(fund=False)
    params = _params(backend, (a.address, b.address), (token, eth))
    cid = backend.channel_id(params)
    assert cid == backend.adjudicator.contract_channel_id(to_params(params))
    h = Htlc(7, 1, eth, 5, hashlib.sha256(b"x").digest(), 1_800_000_000, 1_799_999_940)
    state = ChannelState(
        cid,
        3,
        (AssetBalances(token, (2**200 + 1, 0)), AssetBalances(eth, (4, 1))),
        (h,),
        b"app",
    )
    mapped = to_state(params, state)
    assert mapped.assets == (token.token, "0x" + "00" * 20)  # params order, ETH = address(0)
    assert mapped.balances == ((2**200 + 1, 0), (4, 1))
    assert mapped.htlcs[0].expiry == h.native_expiry  # the contract enforces the native expiry
    auth = backend.authority(params, a, 0)
    assert isinstance(auth, EvmAuthority)
    assert auth.digest(params, state) == backend.adjudicator.contract_digest(mapped)
    with pytest.raises(ValueError):  # not this account's seat
        backend.authority(params, a, 1)


def test_authority_rejects_wrong_key_other_channel_and_malleated(backend: EvmBackend) -> None:  # noqa: F811
    eth = backend.assets()[0]
    a, b, mallory = (backend.create_account(fund=False) for _ in range(3))
    params = _params(backend, (a.address, b.address), (eth,))
    other = _params(backend, (a.address, b.address), (eth,))  # same peers, another nonce
    cid, other_cid = backend.channel_id(params), backend.channel_id(other)
    state = initial_state(cid, (eth,), {eth: (10, 0)})
    auth_a, auth_b = backend.authority(params, a, 0), backend.authority(params, b, 1)
    sig = auth_a.sign(params, state, None)
    assert len(sig) == 65 and sig[64] in (27, 28)
    assert auth_b.verify(params, state, 0, sig, None)
    assert not auth_b.verify(params, state, 1, sig, None)  # a's signature is not b's
    forged = EvmAuthority(backend.chain_id, backend.adjudicator.address, mallory.key)
    assert not auth_a.verify(params, state, 1, forged.sign(params, state), None)
    # a's signature on this channel's state proves nothing about another channel
    moved = ChannelState(other_cid, 0, state.balances)
    assert not auth_b.verify(other, moved, 0, sig, None)
    assert not auth_b.verify(other, state, 0, sig, None)  # a state whose id is not other's
    with pytest.raises(ValueError):
        auth_a.sign(other, state, None)
    # nor on another deployment of the adjudicator
    elsewhere = EvmAuthority(backend.chain_id, "0x" + "11" * 20, None)
    assert not elsewhere.verify(params, state, 0, sig, None)
    # high-s twin of a valid signature, wrong v, wrong length: the contract refuses them
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s = int.from_bytes(sig[32:64], "big")
    twin = sig[:32] + (n - s).to_bytes(32, "big") + bytes([sig[64] ^ 1])
    for bad in (twin, sig[:64] + b"\x01", sig[:64], b""):
        assert not auth_b.verify(params, state, 0, bad, None)
    assert auth_a.revoke(params, SignedState(state, (sig, b""))) is None
    assert auth_a.verify_revocation(params, SignedState(state, (sig, b"")), 1, None)
    assert not auth_a.verify_revocation(params, SignedState(state, (sig, b"")), 1, b"x")
    assert auth_a.native_expiry_ok(1000, 940)
    assert not auth_a.native_expiry_ok(1000, 941)  # later than the margin allows
    assert not auth_a.native_expiry_ok(1000, 1)  # earlier: the payer could refund at once

    # the core's machine, with this authority, refuses a forged opening proposal
    machine = ChannelMachine(params, cid, 1, auth_b, state)
    with pytest.raises(InvalidSignature):
        machine.receive(Propose(cid, (), state, forged.sign(params, state)), backend.now())


def test_ledger_errors_name_the_contracts_custom_error(backend: EvmBackend) -> None:  # noqa: F811
    eth, token = backend.assets()
    ch = open_channel(backend, {eth: (ETH, 0), token: (0, 0)})
    half_signed = SignedState(ch.latest().state, (ch.latest().signatures[0], b""))
    cases = [
        (lambda: backend.conclude(ch.params, ch.accounts[0]), "conclude", "NotRegistered()"),
        (
            lambda: backend.withdraw(ch.params, 0, ch.accounts[0], eth),
            "withdraw",
            "NotConcluded()",
        ),
        (
            lambda: backend.fund(ch.params, 0, ch.accounts[0], eth, 0),
            "fund",
            "InvalidAmount()",
        ),
        (
            lambda: backend.register(ch.params, half_signed, ch.accounts[0]),
            "register",
            "InvalidSignature(1)",
        ),
        (  # an unfunded account cannot pay for gas: refused before execution
            lambda: backend.fund(ch.params, 0, backend.create_account(fund=False), eth, 1),
            "fund",
            None,
        ),
    ]
    for action, operation, reason in cases:
        with pytest.raises(LedgerError) as err:
            action()
        assert err.value.operation == operation
        if reason is not None:
            assert err.value.reason == reason
    # withdraw by the wrong participant and twice
    ch.tx(0, backend.register(ch.params, ch.latest(), ch.accounts[0]))
    backend.advance_time(101)
    ch.tx(0, backend.conclude(ch.params, ch.accounts[0]))
    with pytest.raises(LedgerError) as err:
        backend.withdraw(ch.params, 1, ch.accounts[0], eth)
    assert err.value.reason == f"Unauthorized({ch.accounts[0].address})"
    # the conclusion paid a back: its withdraw duty is done, however often it is asked
    for _ in range(2):
        assert backend.withdraw(ch.params, 0, ch.accounts[0], eth) == already_paid(backend)
    assert ch.eth_delta(0) == -ch.fees[0]


def test_large_erc20_amounts_are_exact(backend: EvmBackend) -> None:  # noqa: F811
    token = backend.assets()[1]
    big = 2**200 + 12345  # far past 64 bits, floats, and anything but uint256
    ch = open_channel(backend, {token: (big, 1)}, extra_tokens=big)
    ch.update(0, Transfer(token, big - 3))
    final = ch.update(1, Close())
    ch.tx(1, backend.close_cooperative(ch.params, final, ch.accounts[1]))
    ch.withdraw_all()
    assert (ch.token_delta(0), ch.token_delta(1)) == (-(big - 3), big - 3)
    assert backend.balance(ch.accounts[1], token) == 10**24 + big + big - 3


def test_plugin_factory_builds_a_fresh_embedded_backend() -> None:
    fresh = EvmBackendFactory().embedded()
    try:
        assert isinstance(fresh, ChainBackend) and isinstance(fresh, EvmBackend)
        assert fresh.chain == "eip155:131277322940537"  # eth-tester's chain id
        eth = fresh.assets()[0]
        a = fresh.create_account()
        assert fresh.balance(a, eth) == 100 * ETH
        assert fresh.poll_events()[-1].height == fresh.w3.eth.block_number  # type: ignore[union-attr]
    finally:
        fresh.close()
