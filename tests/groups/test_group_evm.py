"""A 5-member channel on the EVM group adjudicator (contracts/evm/GroupAdjudicator.sol),
run on eth-tester (py-evm) and anvil: one member silent, one publishing a stale state.

The states are made by the core's group machines signing with ``EvmGroupAuthority``; the
chain is real (py-evm / revm). Every member's ETH balance is checked to the wei: deposit,
transaction fees (from the receipts) and payout.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator

import msgspec
import pytest
from chenilles_evm.adjudicator import ContractReverted
from chenilles_evm.group import (
    EvmGroupAuthority,
    GroupAdjudicatorClient,
    Phase,
    to_group_params,
    to_group_state,
)
from chenilles_evm.ledgers import Ledger, anvil_binary, make_ledger

from chenilles_hub.core.group import GroupParams, SignedGroupState
from chenilles_hub.core.model import Asset, Participant

from .group_harness import Group

pytestmark = [pytest.mark.groups, pytest.mark.evm]

ETHER = 10**18
N = 5
DURATION = 600


def _anvil_available() -> bool:
    try:
        anvil_binary()
    except FileNotFoundError:
        return False
    return True


@pytest.fixture(scope="module", params=["ethtester", "anvil"])
def ledger(request: pytest.FixtureRequest) -> Iterator[Ledger]:
    if request.param == "anvil" and not _anvil_available():
        if os.environ.get("CHENILLES_REQUIRE_ANVIL"):
            pytest.fail("anvil not installed (run `npm ci`)")
        pytest.skip("anvil not installed (run `npm ci`)")
    led = make_ledger(request.param)
    yield led
    led.stop()


@pytest.fixture(scope="module")
def one_ledger() -> Iterator[Ledger]:
    """One ledger for the checks that do not depend on it: anvil (fast) when installed."""
    led = make_ledger("anvil" if _anvil_available() else "ethtester")
    yield led
    led.stop()


class Fees:
    """What each account paid in gas, from the receipts."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.paid: dict[str, int] = defaultdict(int)

    def __call__(self, result, sender: str):  # type: ignore[no-untyped-def]
        receipt = self.ledger.w3.eth.get_transaction_receipt(result.tx_hash)
        self.paid[sender] += int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
        return result


def open_group(ledger: Ledger, client: GroupAdjudicatorClient, nonce: bytes):  # type: ignore[no-untyped-def]
    accounts = ledger.accounts[:N]
    chain = f"eip155:{client.chain_id}"
    params = GroupParams(
        chain,
        tuple(Participant(a.address, bytes([i + 1]) * 32) for i, a in enumerate(accounts)),
        (Asset(chain, "native"),),
        DURATION,
        nonce,
    )
    evm_params = to_group_params(params)
    cid = client.channel_id(evm_params)
    assert cid == client.contract_channel_id(evm_params)
    auths = [EvmGroupAuthority(client, params, a.key) for a in accounts]
    deposits = (3 * ETHER, 2 * ETHER, 2 * ETHER, 5 * ETHER, 1 * ETHER)
    group = Group.build(params, cid, {params.assets[0]: deposits}, auths)
    return group, evm_params, accounts, deposits


def test_five_members_one_silent_one_cheating(ledger: Ledger) -> None:
    w3 = ledger.w3
    relayer = ledger.accounts[6].address
    client = GroupAdjudicatorClient.deploy(w3, relayer)
    fees = Fees(ledger)
    group, params, accounts, deposits = open_group(ledger, client, b"\x05" * 32)
    cid = group.machines[0].snapshot.channel_id
    before = {a.address: w3.eth.get_balance(a.address) for a in accounts}

    for m, account in enumerate(accounts):
        fees(client.deposit(params, m, 0, deposits[m], account.address), account.address)

    # off-chain: member 3 (the future cheater) pays out; states complete by unanimity
    eth = group.params.assets[0]
    group.transfer(3, 0, ETHER, eth)
    group.heal()
    stale = group.machines[3].latest  # version 1: member 3 still holds 4 ETH
    group.transfer(3, 1, 2 * ETHER, eth)
    group.transfer(0, 4, ETHER // 2, eth)  # at once with member 3's: a conflict, resolved
    group.heal()
    group.transfer(2, 3, ETHER // 4, eth)
    group.heal()
    assert not group.failed
    latest = group.machines[0].latest
    assert {m.latest for m in group.machines} == {latest}
    expected = (
        3 * ETHER + ETHER - ETHER // 2,
        2 * ETHER + 2 * ETHER,
        2 * ETHER - ETHER // 4,
        5 * ETHER - 3 * ETHER + ETHER // 4,
        ETHER + ETHER // 2,
    )
    assert latest.state.balances[0].amounts == expected

    # member 4 goes silent: a close never completes
    group.silent.add(4)
    from chenilles_hub.core.group import GroupClose

    group.propose(0, (GroupClose(),))
    group.heal()
    assert group.machines[0].latest == latest

    # member 3 cheats: registers the stale version 1
    stale_evm = to_group_state(stale.state)
    fees(
        client.register(params, stale_evm, stale.signatures, accounts[3].address),
        accounts[3].address,
    )
    assert client.phase(cid)[:2] == (Phase.DISPUTE, stale.version)

    # attacks that change nothing: a state missing the silent member's signature, a forged
    # one, the stale state again, and concluding early
    missing = list(latest.signatures)
    missing[4] = b""
    with pytest.raises(ContractReverted) as info:
        client.refute(params, to_group_state(latest.state), missing, relayer)
    assert info.value.error_name == "BadSignature"
    forged = list(latest.signatures)
    forged[4] = latest.signatures[3]
    with pytest.raises(ContractReverted, match="BadSignature"):
        client.refute(params, to_group_state(latest.state), forged, relayer)
    with pytest.raises(ContractReverted, match="StaleVersion"):
        client.refute(params, stale_evm, stale.signatures, relayer)
    with pytest.raises(ContractReverted, match="ChallengePeriodActive"):
        client.conclude(params, relayer)
    richer = msgspec.structs.replace(stale.state, version=latest.version + 5)
    with pytest.raises(ContractReverted, match="BadSignature"):
        client.refute(params, to_group_state(richer), stale.signatures, relayer)

    # member 0 (honest) refutes with the latest fully signed state
    fees(
        client.refute(params, to_group_state(latest.state), latest.signatures, accounts[0].address),
        accounts[0].address,
    )
    assert client.phase(cid)[:2] == (Phase.DISPUTE, latest.version)

    ledger.advance(DURATION + 1)
    fees(client.conclude(params, relayer), relayer)
    for m in range(N):  # the relayer withdraws for everyone, the silent member included
        fees(client.withdraw(params, m, relayer), relayer)
        assert client.payout(cid, 0, m) == expected[m]
    with pytest.raises(ContractReverted, match="AlreadyWithdrawn"):
        client.withdraw(params, 4, relayer)
    for m, account in enumerate(accounts):
        got = w3.eth.get_balance(account.address)
        assert (
            got == before[account.address] - deposits[m] - fees.paid[account.address] + expected[m]
        )
    assert w3.eth.get_balance(client.address) == 0


def test_digest_and_underfunded_refund(one_ledger: Ledger) -> None:
    """The off-chain digest is the contract's; a version 0 registered when a member never
    funded refunds each member exactly its deposit."""
    ledger = one_ledger
    w3 = ledger.w3
    relayer = ledger.accounts[6].address
    client = GroupAdjudicatorClient.deploy(w3, relayer)
    group, params, _accounts, deposits = open_group(ledger, client, b"\x06" * 32)
    v0: SignedGroupState = group.machines[0].latest
    state = to_group_state(v0.state)
    assert client.digest(state) == client.contract_digest(state)
    for m in range(N - 1):  # member 4 never deposits
        client.deposit(params, m, 0, deposits[m], relayer)
    client.register(params, state, v0.signatures, relayer)
    ledger.advance(DURATION + 1)
    client.conclude(params, relayer)
    for m in range(N):
        assert client.payout(v0.state.channel_id, 0, m) == (deposits[m] if m < N - 1 else 0)
        client.withdraw(params, m, relayer)
    assert w3.eth.get_balance(client.address) == 0
