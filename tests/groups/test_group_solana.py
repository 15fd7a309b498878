"""Group channels on the Solana group program (contracts/solana/chenilles_group.c) in
LiteSVM: 5 members with one silent and one publishing a stale state, and 8 members whose
signatures do not fit one transaction.

The states are made by the core's group machines signing with ``SolanaGroupAuthority``;
the program is the real SBPF build, the Ed25519 precompile and the runtime are LiteSVM's.
Fees are paid by a relayer, so each member's lamports move only by its deposit and payout,
checked exactly.
"""

from __future__ import annotations

import msgspec
import pytest
from chenilles_solana import group as gc
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from solders.transaction_status import InstructionErrorCustom, TransactionErrorInstructionError

from chenilles_hub.core.group import GroupClose, GroupParams, SignedGroupState
from chenilles_hub.core.model import Asset, Participant

from .group_harness import Group

pytestmark = [pytest.mark.groups, pytest.mark.solana]

SOL = 1_000_000_000
DURATION = 100
T0 = 1_700_000_000

if not gc.GROUP_PROGRAM_SO.exists():
    pytest.skip("program not built: run scripts/build_solana_program.py", allow_module_level=True)


class Chain:
    def __init__(self, n: int) -> None:
        self.svm = LiteSVM()
        self.pid = Pubkey.new_unique()
        self.svm.add_program(self.pid, gc.load_group_program())
        self.relayer = Keypair()
        self.members = [Keypair() for _ in range(n)]
        self.svm.airdrop(self.relayer.pubkey(), 100 * SOL)
        for k in self.members:
            self.svm.airdrop(k.pubkey(), 20 * SOL)
        self.set_time(T0)

    def set_time(self, t: int) -> None:
        clock = self.svm.get_clock()
        clock.unix_timestamp = t
        self.svm.set_clock(clock)

    def send(self, ixs, signers=()):  # type: ignore[no-untyped-def]
        tx = Transaction(
            [self.relayer, *signers],
            Message(list(ixs), self.relayer.pubkey()),
            self.svm.latest_blockhash(),
        )
        size = len(bytes(tx))
        assert size <= 1232, f"transaction of {size} bytes would not fit a Solana packet"
        res = self.svm.send_transaction(tx)
        self.svm.expire_blockhash()
        return res

    def ok(self, ixs, signers=()):  # type: ignore[no-untyped-def]
        res = self.send(ixs, signers)
        assert not hasattr(res, "err"), f"transaction failed: {res}"
        return res

    def fails(self, ixs, name: str, watch: Pubkey) -> None:  # type: ignore[no-untyped-def]
        before = bytes(self.svm.get_account(watch).data), self.svm.get_balance(watch)
        res = self.send(ixs)
        err = res.err()
        assert isinstance(err, TransactionErrorInstructionError), err
        assert isinstance(err.err, InstructionErrorCustom), err
        assert gc.ERRORS.get(err.err.code) == name, gc.ERRORS.get(err.err.code, err.err.code)
        assert (bytes(self.svm.get_account(watch).data), self.svm.get_balance(watch)) == before

    def balance(self, k: Keypair) -> int:
        return self.svm.get_balance(k.pubkey())


def open_group(chain: Chain, deposits: tuple[int, ...]):  # type: ignore[no-untyped-def]
    keys = [k.pubkey() for k in chain.members]
    rent = chain.svm.minimum_balance_for_rent_exemption(gc.GROUP_ACCOUNT_SIZE)
    nonce = b"\x09" * 32
    ix, cid, pda = gc.open_ix(chain.pid, chain.relayer.pubkey(), keys, DURATION, nonce, rent)
    chain.ok([ix])
    params = GroupParams(
        "solana:localnet",
        tuple(Participant(str(k), bytes([i + 1]) * 32) for i, k in enumerate(keys)),
        (Asset("solana:localnet", "native"),),
        DURATION,
        nonce,
    )
    auths = [gc.SolanaGroupAuthority(params, k) for k in chain.members]
    group = Group.build(params, cid, {params.assets[0]: deposits}, auths)
    for m, k in enumerate(chain.members):
        chain.ok([gc.deposit_ix(chain.pid, k.pubkey(), pda, m, deposits[m])], [k])
    return group, cid, pda


def register(chain: Chain, cid: bytes, pda: Pubkey, signed: SignedGroupState) -> None:
    message = gc.core_state_message(signed.state)
    sigs = [(k.pubkey(), s) for k, s in zip(chain.members, signed.signatures, strict=True)]
    for ixs in gc.register_ixs(
        chain.pid, pda, cid, message, sigs, chain.relayer.pubkey(), len(chain.members)
    ):
        chain.ok(ixs)


def account(chain: Chain, pda: Pubkey) -> gc.GroupAccount:
    return gc.GroupAccount.decode(bytes(chain.svm.get_account(pda).data))


def test_five_members_one_silent_one_cheating() -> None:
    chain = Chain(5)
    deposits = (3 * SOL, 2 * SOL, 2 * SOL, 5 * SOL, 1 * SOL)
    group, cid, pda = open_group(chain, deposits)
    before = [chain.balance(k) for k in chain.members]
    sol = group.params.assets[0]

    group.transfer(3, 0, SOL, sol)
    group.heal()
    stale = group.machines[3].latest  # member 3 still holds 4 SOL
    group.transfer(3, 1, 2 * SOL, sol)
    group.transfer(0, 4, SOL // 2, sol)
    group.heal()
    group.transfer(2, 3, SOL // 4, sol)
    group.heal()
    assert not group.failed
    latest = group.machines[0].latest
    expected = (
        3 * SOL + SOL - SOL // 2,
        4 * SOL,
        2 * SOL - SOL // 4,
        2 * SOL + SOL // 4,
        SOL + SOL // 2,
    )
    assert latest.state.balances[0].amounts == expected

    group.silent.add(4)  # member 4 goes silent: no close can complete
    group.propose(0, (GroupClose(),))
    group.heal()
    assert group.machines[0].latest == latest

    register(chain, cid, pda, stale)  # member 3 publishes the stale state
    assert (account(chain, pda).status, account(chain, pda).version) == (gc.ST_DISPUTE, 1)

    # what changes nothing: the stale state again, a signature of a non-member, a state
    # without the silent member's signature (no record account given), concluding early
    message = gc.core_state_message(latest.state)
    keys = [k.pubkey() for k in chain.members]
    full = list(zip(keys, latest.signatures, strict=True))
    stale_msg = gc.core_state_message(stale.state)
    stale_sigs = list(zip(keys, stale.signatures, strict=True))
    (ixs,) = gc.register_ixs(chain.pid, pda, cid, stale_msg, stale_sigs, keys[0], 5)
    chain.fails(ixs, "STALE_VERSION", pda)
    stranger = Keypair()
    forged = [*full[:4], (stranger.pubkey(), bytes(stranger.sign_message(message)))]
    (ixs,) = gc.register_ixs(chain.pid, pda, cid, message, forged, keys[0], 5)
    chain.fails(ixs, "BAD_SIGNER", pda)
    (check, reg) = gc.register_ixs(chain.pid, pda, cid, message, full[:4], keys[0], 5)[0]
    without_record = Instruction(chain.pid, reg.data, reg.accounts[:2])
    chain.fails([check, without_record], "NOT_ENOUGH_ACCOUNTS", pda)
    chain.fails([gc.conclude_ix(chain.pid, pda)], "CHALLENGE_PERIOD_ACTIVE", pda)
    richer = msgspec.structs.replace(stale.state, version=latest.version + 3)
    (ixs,) = gc.register_ixs(
        chain.pid, pda, cid, gc.core_state_message(richer), stale_sigs, keys[0], 5
    )
    assert hasattr(chain.send(ixs), "err")  # the precompile refuses signatures on another message

    register(chain, cid, pda, latest)  # member 0 refutes with the latest fully signed state
    assert account(chain, pda).version == latest.version

    chain.set_time(T0 + DURATION + 1)
    chain.ok([gc.conclude_ix(chain.pid, pda)])
    chain.fails([gc.withdraw_ix(chain.pid, pda, 2, keys[3])], "WRONG_MEMBER_ACCOUNT", pda)
    for m, k in enumerate(chain.members):  # the relayer withdraws for all, the silent one too
        chain.ok([gc.withdraw_ix(chain.pid, pda, m, k.pubkey())])
    chain.fails([gc.withdraw_ix(chain.pid, pda, 4, keys[4])], "ALREADY_WITHDRAWN", pda)
    assert account(chain, pda).payout == expected
    for m, k in enumerate(chain.members):
        assert chain.balance(k) == before[m] + expected[m]
    rent = chain.svm.minimum_balance_for_rent_exemption(gc.GROUP_ACCOUNT_SIZE)
    assert chain.svm.get_balance(pda) == rent


@pytest.mark.parametrize(("n", "transactions"), [(8, 2), (16, 3)])
def test_signatures_collected_over_several_transactions(n: int, transactions: int) -> None:
    chain = Chain(n)
    deposits = tuple((i + 1) * SOL for i in range(n))
    group, cid, pda = open_group(chain, deposits)
    before = [chain.balance(k) for k in chain.members]
    sol = group.params.assets[0]
    for m in (0, n // 2, n - 1):  # three members pay at once: conflicts, resolved
        group.transfer(m, (m + 1) % n, SOL // 2, sol)
    group.heal()
    group.propose(n - 2, (GroupClose(),))
    group.heal()
    assert not group.failed
    final = group.machines[0].latest
    assert final.state.final
    message = gc.core_state_message(final.state)
    sigs = [(k.pubkey(), s) for k, s in zip(chain.members, final.signatures, strict=True)]
    txs = gc.register_ixs(chain.pid, pda, cid, message, sigs, chain.relayer.pubkey(), n)
    assert len(txs) == transactions  # Chain.send checks each fits 1232 bytes
    for ixs in txs[:-1]:
        chain.ok(ixs)  # some signatures: recorded, the state does not count yet
        assert account(chain, pda).status == gc.ST_OPEN
    chain.ok(txs[0])  # sending some again changes nothing
    assert account(chain, pda).status == gc.ST_OPEN
    chain.ok(txs[-1])  # the last ones: a final state, concluded at once
    assert account(chain, pda).status == gc.ST_DISPUTE
    chain.ok([gc.conclude_ix(chain.pid, pda)])
    amounts = final.state.balances[0].amounts
    for m, k in enumerate(chain.members):
        chain.ok([gc.withdraw_ix(chain.pid, pda, m, k.pubkey())])
        assert chain.balance(k) == before[m] + amounts[m]
    expected = list(deposits)
    for m in (0, n // 2, n - 1):
        expected[m] -= SOL // 2
        expected[(m + 1) % n] += SOL // 2
    assert list(amounts) == expected
