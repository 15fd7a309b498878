"""The Chenilles channel program (contracts/solana/chenilles_channel.c) running in LiteSVM.

Every test executes the real SBPF program built by scripts/build_solana_program.py; the
Ed25519 precompile, the system program and the runtime's rollback on error are LiteSVM's.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

try:
    from chenilles_solana import program_client as pc
except ImportError:  # the backend is not installed: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "backends" / "solana"))
    from chenilles_solana import program_client as pc

from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from solders.transaction_status import InstructionErrorCustom, TransactionErrorInstructionError

pytestmark = pytest.mark.solana

SOL = 1_000_000_000
DURATION = 100
T0 = 1_700_000_000

if not pc.PROGRAM_SO.exists():
    pytest.skip("program not built: run scripts/build_solana_program.py", allow_module_level=True)


@dataclass
class Env:
    svm: LiteSVM
    pid: Pubkey
    relayer: Keypair  # pays fees; never a participant
    a: Keypair
    b: Keypair
    cid: bytes
    chan: Pubkey

    # ---- plumbing ----
    def send(self, ixs, signers=()):
        signers = [self.relayer, *signers]
        tx = Transaction(
            signers, Message(list(ixs), self.relayer.pubkey()), self.svm.latest_blockhash()
        )
        res = self.svm.send_transaction(tx)
        self.svm.expire_blockhash()
        return res, len(bytes(tx))

    def ok(self, ixs, signers=()):
        res, _ = self.send(ixs, signers)
        assert not hasattr(res, "err"), f"transaction failed: {res}"
        return res

    def fails(self, ixs, code, signers=(), ix_index=None, watch=()):
        """Sends, expects custom error `code` (a name of pc.ERRORS or an int) from the
        instruction at `ix_index` (default: the last), and checks no lamports moved."""
        watched = [self.chan, self.a.pubkey(), self.b.pubkey(), *watch]
        before = {k: self.svm.get_balance(k) for k in watched}
        data_before = bytes(self.svm.get_account(self.chan).data)
        res, _ = self.send(ixs, signers)
        assert hasattr(res, "err"), "transaction unexpectedly succeeded"
        err = res.err()
        assert isinstance(err, TransactionErrorInstructionError), err
        expected = pc.ERROR_CODES[code] if isinstance(code, str) else code
        assert err.index == (len(ixs) - 1 if ix_index is None else ix_index), err
        assert isinstance(err.err, InstructionErrorCustom), err
        assert err.err.code == expected, f"got {pc.ERRORS.get(err.err.code, err.err.code)}"
        assert {k: self.svm.get_balance(k) for k in watched} == before
        assert bytes(self.svm.get_account(self.chan).data) == data_before

    def set_time(self, t: int) -> None:
        c = self.svm.get_clock()
        c.unix_timestamp = t
        self.svm.set_clock(c)

    # ---- channel helpers ----
    def state(self, version, bal_a, bal_b, final=False, htlcs=(), cid=None, pid=None):
        return pc.ChannelStateMsg(
            pid or self.pid,
            cid or self.cid,
            version,
            final,
            (pc.AssetBalances(pc.NATIVE_MINT, bal_a, bal_b),),
            tuple(htlcs),
        ).encode()

    def signed(self, msg, a=None, b=None):
        return pc.sign_state(msg, a or self.a, b or self.b)

    def register(self, msg):
        return self.ok([self.signed(msg), pc.register_ix(self.pid, self.chan)])

    def account(self) -> pc.ChannelAccount:
        return pc.ChannelAccount.decode(bytes(self.svm.get_account(self.chan).data))

    def balance(self, kp: Keypair) -> int:
        return self.svm.get_balance(kp.pubkey())


def n32(nonce: int) -> bytes:
    return nonce.to_bytes(32, "little")


def make_env(deposit_a=1 * SOL, deposit_b=2 * SOL, nonce=7) -> Env:
    svm = LiteSVM()
    pid = Pubkey.new_unique()
    svm.add_program(pid, pc.load_program())
    relayer, a, b = Keypair(), Keypair(), Keypair()
    for k in (relayer, a, b):
        svm.airdrop(k.pubkey(), 100 * SOL)
    c = svm.get_clock()
    c.unix_timestamp = T0
    svm.set_clock(c)
    rent = svm.minimum_balance_for_rent_exemption(pc.CHANNEL_ACCOUNT_SIZE)
    ix, cid, chan = pc.open_ix(
        pid, relayer.pubkey(), a.pubkey(), b.pubkey(), DURATION, n32(nonce), rent
    )
    env = Env(svm, pid, relayer, a, b, cid, chan)
    env.ok([ix])
    if deposit_a:
        env.ok([pc.deposit_ix(pid, a.pubkey(), chan, 0, deposit_a)], [a])
    if deposit_b:
        env.ok([pc.deposit_ix(pid, b.pubkey(), chan, 1, deposit_b)], [b])
    return env


@pytest.fixture
def env() -> Env:
    return make_env()


def preimage_and_hash(tag: bytes):
    pre = hashlib.sha256(b"preimage:" + tag).digest()
    return pre, hashlib.sha256(pre).digest()


def reveal(env: Env, preimage: bytes):
    rent = env.svm.minimum_balance_for_rent_exemption(pc.PREIMAGE_RECORD_SIZE)
    ix, pda = pc.reveal_ix(env.pid, env.relayer.pubkey(), preimage, rent)
    return ix, pda


# ---------------------------------------------------------------------------------------


def test_open_and_deposit(env):
    acct = env.account()
    assert acct.channel_id == pc.channel_id(
        env.pid, env.a.pubkey(), env.b.pubkey(), DURATION, n32(7)
    )
    assert acct.participants == (env.a.pubkey(), env.b.pubkey())
    assert acct.deposits == ((1 * SOL, 2 * SOL),)
    assert acct.status == pc.ST_OPEN
    rent = env.svm.minimum_balance_for_rent_exemption(pc.CHANNEL_ACCOUNT_SIZE)
    assert env.svm.get_balance(env.chan) == rent + 3 * SOL
    assert env.svm.get_account(env.chan).owner == env.pid


def test_cooperative_close(env):
    a0, b0 = env.balance(env.a), env.balance(env.b)
    msg = env.state(9, SOL // 2, 5 * SOL // 2, final=True)
    env.ok([env.signed(msg), pc.coop_close_ix(env.pid, env.chan, env.a.pubkey(), env.b.pubkey())])
    assert env.balance(env.a) == a0 + SOL // 2
    assert env.balance(env.b) == b0 + 5 * SOL // 2
    acct = env.account()
    assert acct.status == pc.ST_CLOSED and acct.version == 9
    # closed: nothing can be registered, withdrawn or closed again
    env.fails([env.signed(msg), pc.register_ix(env.pid, env.chan)], "BAD_STATUS")
    env.fails([pc.withdraw_ix(env.pid, env.chan, 0, env.a.pubkey())], "NOT_CONCLUDED")
    env.fails(
        [env.signed(msg), pc.coop_close_ix(env.pid, env.chan, env.a.pubkey(), env.b.pubkey())],
        "BAD_STATUS",
    )


def test_register_refute_conclude_withdraw(env):
    v3 = env.state(3, 2 * SOL, 1 * SOL)
    v5 = env.state(5, SOL // 4, 11 * SOL // 4)
    env.register(v3)
    acct = env.account()
    assert acct.status == pc.ST_DISPUTE and acct.version == 3
    assert acct.deadline == T0 + DURATION
    # a newer state refutes it during the challenge period
    env.set_time(T0 + 50)
    env.register(v5)
    assert env.account().version == 5
    assert env.account().deadline == T0 + DURATION  # refuting does not extend the period
    # stale states are rejected
    env.fails([env.signed(v3), pc.register_ix(env.pid, env.chan)], "STALE_VERSION")
    env.fails([env.signed(v5), pc.register_ix(env.pid, env.chan)], "STALE_VERSION")
    # too early to conclude or withdraw
    env.fails([pc.conclude_ix(env.pid, env.chan)], "CHALLENGE_PERIOD_ACTIVE")
    env.fails([pc.withdraw_ix(env.pid, env.chan, 0, env.a.pubkey())], "NOT_CONCLUDED")
    env.fails(
        [env.signed(v5), pc.coop_close_ix(env.pid, env.chan, env.a.pubkey(), env.b.pubkey())],
        "NOT_FINAL",
    )
    # after the period: no more refutation, conclusion works
    env.set_time(T0 + DURATION)
    v6 = env.state(6, SOL, 2 * SOL)
    env.fails([env.signed(v6), pc.register_ix(env.pid, env.chan)], "CHALLENGE_PERIOD_OVER")
    env.ok([pc.conclude_ix(env.pid, env.chan)])
    acct = env.account()
    assert acct.status == pc.ST_CONCLUDED and acct.payout == ((SOL // 4, 11 * SOL // 4),)
    a0, b0 = env.balance(env.a), env.balance(env.b)
    env.fails([pc.withdraw_ix(env.pid, env.chan, 0, env.b.pubkey())], "WRONG_PARTICIPANT_ACCOUNT")
    env.ok([pc.withdraw_ix(env.pid, env.chan, 0, env.a.pubkey())])
    assert env.balance(env.a) == a0 + SOL // 4
    env.fails([pc.withdraw_ix(env.pid, env.chan, 0, env.a.pubkey())], "ALREADY_WITHDRAWN")
    env.ok([pc.withdraw_ix(env.pid, env.chan, 1, env.b.pubkey())])
    assert env.balance(env.b) == b0 + 11 * SOL // 4
    env.fails([pc.withdraw_ix(env.pid, env.chan, 1, env.b.pubkey())], "ALREADY_WITHDRAWN")
    rent = env.svm.minimum_balance_for_rent_exemption(pc.CHANNEL_ACCOUNT_SIZE)
    assert env.svm.get_balance(env.chan) == rent
    env.fails([pc.conclude_ix(env.pid, env.chan)], "BAD_STATUS")


def test_final_state_registered_concludes_at_once(env):
    env.register(env.state(4, SOL, 2 * SOL, final=True))
    env.ok([pc.conclude_ix(env.pid, env.chan)])
    assert env.account().payout == ((SOL, 2 * SOL),)


def test_htlc_claim_and_refund(env):
    pre1, h1 = preimage_and_hash(b"1")  # A pays B 0.3 SOL, revealed in time: B gets it
    _, h2 = preimage_and_hash(b"2")  # B pays A 0.2 SOL, never revealed: refunded to B
    htlcs = (
        pc.HtlcTerms(1, 0, 3 * SOL // 10, h1, T0 + 500),
        pc.HtlcTerms(2, 1, 2 * SOL // 10, h2, T0 + 800),
    )
    env.register(env.state(10, 7 * SOL // 10, 18 * SOL // 10, htlcs=htlcs))
    assert env.account().htlcs == htlcs
    env.set_time(T0 + 200)
    ix, pda = reveal(env, pre1)
    env.ok([ix])
    rec = pc.PreimageRecord.decode(bytes(env.svm.get_account(pda).data))
    assert (rec.preimage, rec.payment_hash, rec.revealed_at) == (pre1, h1, T0 + 200)
    ix_again, _ = reveal(env, pre1)
    env.fails([ix_again], "ALREADY_REVEALED")
    # HTLC 2 can still be revealed until its expiry: conclusion must wait
    env.fails([pc.conclude_ix(env.pid, env.chan, [h1, h2])], "HTLC_UNRESOLVED")
    # the records passed must be the right PDAs
    bad = pc.conclude_ix(env.pid, env.chan, [h2, h1])
    env.fails([bad], "BAD_PDA")
    env.set_time(T0 + 801)
    env.ok([pc.conclude_ix(env.pid, env.chan, [h1, h2])])
    assert env.account().payout == (
        (7 * SOL // 10, 18 * SOL // 10 + 3 * SOL // 10 + 2 * SOL // 10),
    )


def test_htlc_revealed_after_expiry_is_refunded(env):
    pre, h = preimage_and_hash(b"late")
    htlcs = (pc.HtlcTerms(1, 1, SOL, h, T0 + 300),)  # B pays A
    env.register(env.state(2, SOL, SOL, htlcs=htlcs))
    env.set_time(T0 + 301)
    ix, _ = reveal(env, pre)
    env.ok([ix])  # the record exists, but it is too late for this HTLC
    env.ok([pc.conclude_ix(env.pid, env.chan, [h])])
    assert env.account().payout == ((SOL, 2 * SOL),)


def test_htlc_revealed_before_registration_pays(env):
    pre, h = preimage_and_hash(b"early")
    ix, _ = reveal(env, pre)
    env.ok([ix])
    htlcs = (pc.HtlcTerms(1, 0, SOL, h, T0 + 1000),)  # A pays B
    env.register(env.state(2, 0, 2 * SOL, htlcs=htlcs))
    env.set_time(T0 + DURATION)
    env.ok([pc.conclude_ix(env.pid, env.chan, [h])])
    assert env.account().payout == ((0, 3 * SOL),)


# ---- rejections ------------------------------------------------------------------------


def test_forged_signature_rejected_by_precompile(env):
    msg = env.state(1, SOL, 2 * SOL)
    sig_ix = env.signed(msg)
    data = bytearray(sig_ix.data)
    sig_off = int.from_bytes(data[2:4], "little")
    data[sig_off] ^= 0x01
    forged = Instruction(sig_ix.program_id, bytes(data), [])
    res, _ = env.send([forged, pc.register_ix(env.pid, env.chan)])
    assert res.err().index == 0  # the Ed25519 precompile refuses it
    assert env.account().status == pc.ST_OPEN


def test_signature_by_non_participant(env):
    msg = env.state(1, SOL, 2 * SOL)
    mallory = Keypair()
    env.fails([env.signed(msg, b=mallory), pc.register_ix(env.pid, env.chan)], "BAD_SIGNER")
    env.fails([env.signed(msg, a=env.b, b=env.a), pc.register_ix(env.pid, env.chan)], "BAD_SIGNER")


def test_wrong_channel_and_program(env):
    other = pc.channel_id(env.pid, env.a.pubkey(), env.b.pubkey(), DURATION, n32(8))
    env.fails(
        [env.signed(env.state(1, SOL, 2 * SOL, cid=other)), pc.register_ix(env.pid, env.chan)],
        "WRONG_CHANNEL",
    )
    env.fails(
        [
            env.signed(env.state(1, SOL, 2 * SOL, pid=Pubkey.new_unique())),
            pc.register_ix(env.pid, env.chan),
        ],
        "WRONG_PROGRAM",
    )
    # a state of another channel of the same participants cannot be replayed here
    env2_ix, cid2, chan2 = pc.open_ix(
        env.pid,
        env.relayer.pubkey(),
        env.a.pubkey(),
        env.b.pubkey(),
        DURATION,
        n32(8),
        env.svm.minimum_balance_for_rent_exemption(pc.CHANNEL_ACCOUNT_SIZE),
    )
    env.ok([env2_ix])
    msg2 = env.state(1, 0, 0, final=True, cid=cid2)
    env.ok([env.signed(msg2), pc.coop_close_ix(env.pid, chan2, env.a.pubkey(), env.b.pubkey())])
    env.fails(
        [env.signed(msg2), pc.coop_close_ix(env.pid, env.chan, env.a.pubkey(), env.b.pubkey())],
        "WRONG_CHANNEL",
    )


def test_non_conserving_state(env):
    env.fails(
        [env.signed(env.state(1, SOL, 3 * SOL)), pc.register_ix(env.pid, env.chan)],
        "NOT_CONSERVING",
    )
    _, h = preimage_and_hash(b"x")
    htlc = (pc.HtlcTerms(1, 0, SOL, h, T0 + 10),)
    env.fails(
        [env.signed(env.state(1, SOL, 2 * SOL, htlcs=htlc)), pc.register_ix(env.pid, env.chan)],
        "NOT_CONSERVING",
    )
    env.fails(
        [
            env.signed(env.state(1, 2**64 - 1, 2, final=True)),
            pc.coop_close_ix(env.pid, env.chan, env.a.pubkey(), env.b.pubkey()),
        ],
        "OVERFLOW",
    )


def test_malformed_signature_instructions(env):
    msg = env.state(1, SOL, 2 * SOL)
    # no Ed25519 instruction at the index given
    env.fails([pc.register_ix(env.pid, env.chan, 0)], "MISSING_SIGNATURE")
    env.fails([env.signed(msg), pc.register_ix(env.pid, env.chan, 5)], "MISSING_SIGNATURE")
    # a single signature is not enough
    one = pc.ed25519_verify_ix(msg, [(bytes(env.a.pubkey()), bytes(env.a.sign_message(msg)))])
    env.fails([one, pc.register_ix(env.pid, env.chan)], "BAD_SIGNATURE_IX")
    # two valid signatures, but over different messages
    other = env.state(2, SOL, 2 * SOL)
    pieces = [(env.a, msg), (env.b, other)]
    head, body, offsets = 2 + 14 * 2, bytearray(), bytearray()
    for kp, m in pieces:
        pk_off = head + len(body)
        body += bytes(kp.pubkey())
        sig_off = head + len(body)
        body += bytes(kp.sign_message(m))
        m_off = head + len(body)
        body += m
        offsets += struct.pack("<7H", sig_off, 0xFFFF, pk_off, 0xFFFF, m_off, len(m), 0xFFFF)
    two_msgs = Instruction(pc.ED25519_PROGRAM_ID, bytes([2, 0]) + offsets + body, [])
    env.fails([two_msgs, pc.register_ix(env.pid, env.chan)], "BAD_SIGNATURE_IX")
    # valid signatures whose message is read from another instruction (index 1, not 0xFFFF):
    # the precompile accepts it, the program must not
    good = env.signed(msg)
    data = bytearray(good.data)
    struct.pack_into("<H", data, 2 + 14 + 12, 1)  # B's message_instruction_index
    cross = Instruction(good.program_id, bytes(data), [])
    env.fails([cross, good, pc.register_ix(env.pid, env.chan)], "BAD_SIGNATURE_IX")
    # wrong Instructions sysvar account
    fake = pc.register_ix(env.pid, env.chan)
    metas = list(fake.accounts)
    metas[1] = type(metas[1])(Pubkey.new_unique(), False, False)
    env.fails([env.signed(msg), Instruction(env.pid, fake.data, metas)], "BAD_SYSVAR")


def test_wrong_accounts(env):
    # a channel account not owned by the program
    fake = pc.register_ix(env.pid, env.a.pubkey())
    env.fails([env.signed(env.state(1, SOL, 2 * SOL)), fake], "WRONG_CHANNEL_ACCOUNT")
    env.fails([pc.withdraw_ix(env.pid, env.b.pubkey(), 0, env.a.pubkey())], "WRONG_CHANNEL_ACCOUNT")
    # cooperative close paying to someone else
    msg = env.state(1, SOL, 2 * SOL, final=True)
    env.fails(
        [env.signed(msg), pc.coop_close_ix(env.pid, env.chan, env.b.pubkey(), env.a.pubkey())],
        "WRONG_PARTICIPANT_ACCOUNT",
    )
    # open at an address that is not the channel PDA
    ix, _, _ = pc.open_ix(
        env.pid, env.relayer.pubkey(), env.a.pubkey(), env.b.pubkey(), DURATION, n32(9), 10**7
    )
    metas = list(ix.accounts)
    metas[1] = type(metas[1])(Pubkey.new_unique(), False, True)
    env.fails([Instruction(env.pid, ix.data, metas)], "BAD_PDA")
    # the same participant twice
    ix, _, _ = pc.open_ix(
        env.pid, env.relayer.pubkey(), env.a.pubkey(), env.a.pubkey(), DURATION, n32(9), 10**7
    )
    env.fails([ix], "BAD_PARTICIPANTS")
    # unknown instruction
    env.fails([Instruction(env.pid, b"\x63", [])], "BAD_INSTRUCTION")


def test_asset_and_htlc_limits(env):
    msg = pc.ChannelStateMsg(
        env.pid, env.cid, 1, False, (pc.AssetBalances(b"\x01" * 32, SOL, 2 * SOL),)
    ).encode()
    env.fails([env.signed(msg), pc.register_ix(env.pid, env.chan)], "BAD_ASSET")
    _, h = preimage_and_hash(b"x")
    many = tuple(pc.HtlcTerms(i, 0, 1, h, T0) for i in range(pc.MAX_HTLCS + 1))
    env.fails(
        [env.signed(env.state(1, SOL - 9, 2 * SOL, htlcs=many)), pc.register_ix(env.pid, env.chan)],
        "TOO_MANY_HTLCS",
    )
    final_with_htlc = env.state(1, SOL - 1, 2 * SOL, final=True, htlcs=many[:1])
    env.fails(
        [
            env.signed(final_with_htlc),
            pc.coop_close_ix(env.pid, env.chan, env.a.pubkey(), env.b.pubkey()),
        ],
        "HTLCS_IN_FINAL",
    )
    truncated = env.state(1, SOL, 2 * SOL)[:-1]
    env.fails([env.signed(truncated), pc.register_ix(env.pid, env.chan)], "BAD_MESSAGE")


def test_cooperative_close_during_dispute(env):
    env.register(env.state(5, SOL, 2 * SOL))
    env.fails(
        [
            env.signed(env.state(4, 0, 3 * SOL, final=True)),
            pc.coop_close_ix(env.pid, env.chan, env.a.pubkey(), env.b.pubkey()),
        ],
        "STALE_VERSION",
    )
    env.ok(
        [
            env.signed(env.state(6, 0, 3 * SOL, final=True)),
            pc.coop_close_ix(env.pid, env.chan, env.a.pubkey(), env.b.pubkey()),
        ]
    )
    assert env.account().status == pc.ST_CLOSED


def test_deposit_only_while_open(env):
    env.register(env.state(1, SOL, 2 * SOL))
    env.fails(
        [pc.deposit_ix(env.pid, env.a.pubkey(), env.chan, 0, SOL)], "BAD_STATUS", signers=[env.a]
    )


# ---- costs -----------------------------------------------------------------------------


def test_report_compute_units_and_sizes(capsys):
    rows = []

    def measure(env, name, ixs, signers=()):
        res, size = env.send(ixs, signers)
        assert not hasattr(res, "err"), res
        rows.append((name, res.compute_units_consumed(), size))

    env = make_env(0, 0)
    rent = env.svm.minimum_balance_for_rent_exemption(pc.CHANNEL_ACCOUNT_SIZE)
    ix, _, _ = pc.open_ix(
        env.pid, env.relayer.pubkey(), env.a.pubkey(), env.b.pubkey(), DURATION, n32(99), rent
    )
    measure(env, "open", [ix])
    measure(env, "deposit", [pc.deposit_ix(env.pid, env.a.pubkey(), env.chan, 0, SOL)], [env.a])
    measure(env, "deposit", [pc.deposit_ix(env.pid, env.b.pubkey(), env.chan, 1, SOL)], [env.b])
    hs = [preimage_and_hash(bytes([i])) for i in range(pc.MAX_HTLCS)]
    htlcs = tuple(pc.HtlcTerms(i, i % 2, SOL // 100, h, T0 + 1000) for i, (_, h) in enumerate(hs))
    measure(
        env,
        "register (0 htlcs)",
        [env.signed(env.state(1, SOL, SOL)), pc.register_ix(env.pid, env.chan)],
    )
    measure(
        env,
        "refute (1 htlc)",
        [
            env.signed(env.state(2, SOL - SOL // 100, SOL, htlcs=htlcs[:1])),
            pc.register_ix(env.pid, env.chan),
        ],
    )
    measure(
        env,
        f"refute ({pc.MAX_HTLCS} htlcs)",
        [
            env.signed(env.state(3, SOL - SOL // 25, SOL - SOL // 25, htlcs=htlcs)),
            pc.register_ix(env.pid, env.chan),
        ],
    )
    env.set_time(T0 + 500)
    ix, _ = reveal(env, hs[0][0])
    measure(env, "reveal preimage", [ix])
    env.set_time(T0 + 1001)
    measure(
        env,
        f"conclude ({pc.MAX_HTLCS} htlcs)",
        [pc.conclude_ix(env.pid, env.chan, [h for _, h in hs])],
    )
    measure(env, "withdraw", [pc.withdraw_ix(env.pid, env.chan, 0, env.a.pubkey())])

    env2 = make_env()
    measure(
        env2,
        "cooperative close",
        [
            env2.signed(env2.state(1, SOL, 2 * SOL, final=True)),
            pc.coop_close_ix(env2.pid, env2.chan, env2.a.pubkey(), env2.b.pubkey()),
        ],
    )
    env3 = make_env()
    env3.register(env3.state(1, SOL, 2 * SOL))
    env3.set_time(T0 + DURATION)
    measure(env3, "conclude (0 htlcs)", [pc.conclude_ix(env3.pid, env3.chan)])

    with capsys.disabled():
        print("\nChenilles Solana program: compute units and transaction sizes")
        print(f"  program size: {len(pc.load_program())} bytes")
        for name, cu, size in rows:
            print(f"  {name:24s} {cu:7d} CU  {size:5d} bytes")
    for name, _cu, size in rows:
        assert size <= 1232, name
