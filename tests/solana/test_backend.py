"""The Solana ChainBackend end to end: two real ChannelMachines, the real program in LiteSVM.

Off-chain, the core's machines sign with the backend's authority; on-chain, every action
goes through the ChainBackend API. Balances are checked to the lamport and token unit.
"""

from __future__ import annotations

import hashlib

import msgspec
import pytest
from chenilles_solana import program_client as pc
from chenilles_solana import spl_token as spl
from chenilles_solana.backend import SolanaAccount, SolanaBackend, embedded_backend
from solders.pubkey import Pubkey

from chenilles_hub.backend import (
    ChainBackend,
    Concluded,
    Funded,
    LedgerError,
    NewBlock,
    PreimageRevealed,
    Registered,
)
from chenilles_hub.core import (
    AddHtlc,
    Asset,
    AssetBalances,
    ChannelMachine,
    ChannelParams,
    Close,
    Htlc,
    Participant,
    Send,
    SettleHtlc,
    SignedState,
    Transfer,
    initial_state,
    payment_hash,
)
from chenilles_hub.core.errors import AmountOutOfRange, InvalidParams

pytestmark = pytest.mark.solana

SOL = 1_000_000_000
T0 = 1_750_000_000
DURATION = 600


class Pair:
    """Alice (participant 0) and Bob (1), their machines, and the channel on the backend."""

    def __init__(self, backend: SolanaBackend, deposits_sol=(2 * SOL, SOL), deposits_tok=(500, 0)):
        self.backend = backend
        self.alice, self.bob = backend.create_account(), backend.create_account()
        self.sol = Asset(backend.chain, "native")
        self.tok = Asset(backend.chain, str(backend.test_mint))
        self.params = ChannelParams(
            chain=backend.chain,
            participants=(
                Participant(self.alice.chain_key, b"\x01" * 32),
                Participant(self.bob.chain_key, b"\x02" * 32),
            ),
            assets=(self.sol, self.tok),
            challenge_duration=DURATION,
            nonce=backend.new_nonce((), {}, self.alice),
        )
        self.cid = backend.channel_id(self.params)
        self.deposits = {self.sol: deposits_sol, self.tok: deposits_tok}
        init = initial_state(self.cid, self.params.assets, self.deposits)
        self.m = [
            ChannelMachine(self.params, self.cid, i, backend.authority(self.params, acct, i), init)
            for i, acct in enumerate((self.alice, self.bob))
        ]
        self.history: list[SignedState] = []

    def account(self, i: int) -> SolanaAccount:
        return (self.alice, self.bob)[i]

    def run(self, who: int, effects) -> None:
        """Delivers messages back and forth until both machines are quiet."""
        queue = [(1 - who, e.message) for e in effects if isinstance(e, Send)]
        while queue:
            to, msg = queue.pop(0)
            out = self.m[to].receive(msg, self.backend.now())
            queue += [(1 - to, e.message) for e in out if isinstance(e, Send)]
        latest = self.m[0].latest
        assert latest is not None and latest == self.m[1].latest
        self.history.append(latest)

    def open_and_fund(self) -> None:
        self.run(0, self.m[0].open())
        for i in (0, 1):
            for asset, amounts in self.deposits.items():
                if amounts[i]:
                    self.backend.fund(self.params, i, self.account(i), asset, amounts[i])

    def pay(self, who: int, *updates) -> SignedState:
        self.run(who, self.m[who].propose(tuple(updates), self.backend.now()))
        return self.history[-1]

    def htlc(self, hid: int, payer: int, asset: Asset, amount: int, tag: bytes):
        preimage = hashlib.sha256(tag).digest()
        expiry = self.backend.now() + 7200
        h = Htlc(
            hid,
            payer,
            asset,
            amount,
            payment_hash(preimage),
            expiry,
            self.backend.native_expiry(expiry),
        )
        return h, preimage

    def snapshot(self) -> tuple:
        """Everything a rejected transaction must leave untouched."""
        b = self.backend
        chan = pc.channel_pda(b.program_id, self.cid)[0]
        vault = pc.vault_pda(b.program_id, chan, b.test_mint)[0]
        raw = b.ledger.account(chan)
        vraw = b.ledger.account(vault)
        return (
            raw,
            vraw,
            *(b.balance(a, x) for a in (self.alice, self.bob) for x in (self.sol, self.tok)),
        )


@pytest.fixture
def backend() -> SolanaBackend:
    return embedded_backend(start_time=T0)


@pytest.fixture
def pair(backend) -> Pair:
    p = Pair(backend)
    p.open_and_fund()
    return p


def test_backend_satisfies_the_protocol(backend):
    assert isinstance(backend, ChainBackend)
    assert backend.chain == "solana:localnet"
    assert [a.token for a in backend.assets()] == ["native", str(backend.test_mint)]
    assert backend.now() == T0
    tm = backend.time_model()
    assert (tm.block_interval_ms, tm.finality_depth, tm.inclusion_delay) == (400, 32, 60)
    acct = backend.create_account()
    assert backend.balance(acct, backend.assets()[0]) == 100 * SOL
    assert backend.balance(acct, backend.assets()[1]) == 10**12
    assert backend.estimate_fee("register") == 15000


def test_full_life_cycle_cooperative_close(pair: Pair):
    b, sol, tok = pair.backend, pair.sol, pair.tok
    events = b.poll_events()
    funded = [e for e in events if isinstance(e, Funded)]
    assert [(e.asset, e.participant, e.amount) for e in funded] == [
        (sol, 0, 2 * SOL),
        (tok, 0, 500),
        (sol, 1, SOL),
    ]
    assert all(e.channel_id == pair.cid for e in funded)
    assert isinstance(events[-1], NewBlock)
    start = [b.balance(a, x) for a in (pair.alice, pair.bob) for x in (sol, tok)]

    pair.pay(0, Transfer(sol, SOL // 2))
    pair.pay(0, Transfer(tok, 200))
    pair.pay(1, Transfer(sol, SOL // 10))
    h, preimage = pair.htlc(1, 0, sol, SOL // 4, b"life")
    pair.pay(0, AddHtlc(h))
    pair.pay(1, SettleHtlc(1, preimage))
    final = pair.pay(0, Close())
    assert final.state.final
    assert final.state.free(sol) == (
        2 * SOL - SOL // 2 + SOL // 10 - SOL // 4,
        3 * SOL // 2 + SOL // 20 * 3,
    )
    receipt = b.close_cooperative(pair.params, final, pair.bob)
    assert receipt.cost_unit == "CU" and receipt.cost > 0 and receipt.fee == 15000
    assert receipt.fee_asset == sol
    a_sol, b_sol = final.state.free(sol)
    a_tok, b_tok = final.state.free(tok)
    assert b.balance(pair.alice, sol) == start[0] + a_sol
    assert b.balance(pair.alice, tok) == start[1] + a_tok
    assert b.balance(pair.bob, sol) == start[2] + b_sol - receipt.fee
    assert b.balance(pair.bob, tok) == start[3] + b_tok
    assert Concluded(pair.cid, final.version) in b.poll_events()
    # Asked again (the node does after a reorg, and checks once the close is deep enough):
    # the chain has it, nothing is sent.
    again = b.close_cooperative(pair.params, final, pair.bob)
    assert again.txid == "" and again.fee == 0
    assert b.balance(pair.bob, sol) == start[2] + b_sol - receipt.fee


def test_dispute_cheater_registers_old_state_and_is_refuted(pair: Pair):
    b, sol, tok = pair.backend, pair.sol, pair.tok
    old = pair.pay(1, Transfer(sol, SOL // 2))  # Bob -> Alice: Bob would like to undo this
    pair.pay(0, Transfer(tok, 100))
    latest = pair.pay(1, Transfer(sol, SOL // 4))
    b.poll_events()
    b.register(pair.params, old, pair.bob)
    registered = [e for e in b.poll_events() if isinstance(e, Registered)]
    assert registered == [Registered(pair.cid, old.version, T0 + DURATION)]
    # Alice's watcher sees a stale version and refutes with the latest
    assert registered[0].version < pair.m[0].latest.version
    receipt = b.challenge(pair.params, latest, pair.alice)
    assert receipt.operation == "challenge"
    with pytest.raises(LedgerError, match=r"STALE_VERSION \(custom program error 0x10\)"):
        b.challenge(pair.params, old, pair.bob)
    with pytest.raises(LedgerError, match="CHALLENGE_PERIOD_ACTIVE"):
        b.conclude(pair.params, pair.alice)
    b.advance_time(DURATION)
    assert b.now() == T0 + DURATION
    b.conclude(pair.params, pair.alice)
    assert Concluded(pair.cid, latest.version) in b.poll_events()
    before = {(i, a): b.balance(pair.account(i), a) for i in (0, 1) for a in (sol, tok)}
    receipts = {
        i: [b.withdraw(pair.params, i, pair.account(i), a) for a in (sol, tok)] for i in (0, 1)
    }
    # Alice opened the channel (she paid its rent): her first withdraw also paid Bob's
    # payouts and closed the accounts; her books show the rent coming back
    rent = b.ledger.rent(pc.CHANNEL_ACCOUNT_SIZE) + b.ledger.rent(spl.TOKEN_ACCOUNT_SIZE)
    assert [r.rent for r in receipts[0]] == [-rent, 0]
    assert [(r.txid, r.fee) for r in (receipts[0][1], *receipts[1])] == [("", 0)] * 3
    assert b.ledger.account(pc.channel_pda(b.program_id, pair.cid)[0]) is None
    for i in (0, 1):
        spent = sum(r.fee + r.rent for r in receipts[i])
        assert b.balance(pair.account(i), sol) == before[i, sol] + latest.state.free(sol)[i] - spent
        assert b.balance(pair.account(i), tok) == before[i, tok] + latest.state.free(tok)[i]
    again = b.withdraw(pair.params, 0, pair.alice, sol)  # paid once: nothing more to send
    assert (again.txid, again.fee, again.rent) == ("", 0, 0)


def test_silent_peer_force_close(pair: Pair):
    b, sol = pair.backend, pair.sol
    latest = pair.pay(0, Transfer(sol, SOL))
    # Bob goes silent; Alice registers, waits out the period, concludes, withdraws for both
    b.register(pair.params, latest, pair.alice)
    b.advance_time(DURATION + 1)
    b.conclude(pair.params, pair.alice)
    bob_before = b.balance(pair.bob, sol)
    b.withdraw(pair.params, 1, pair.alice, sol)  # anyone may push Bob's payout to Bob
    assert b.balance(pair.bob, sol) == bob_before + 2 * SOL


def test_htlc_claimed_on_chain_before_expiry(pair: Pair):
    b, tok = pair.backend, pair.tok
    h, preimage = pair.htlc(7, 0, tok, 120, b"claim")
    locked = pair.pay(0, AddHtlc(h))
    # Alice vanishes; Bob enforces the HTLC on chain
    b.register(pair.params, locked, pair.bob)
    b.claim_htlc(pair.params, h, preimage, pair.bob)
    revealed = [e for e in b.poll_events() if isinstance(e, PreimageRevealed)]
    assert revealed == [PreimageRevealed(h.payment_hash, preimage, T0)]
    with pytest.raises(LedgerError, match="ALREADY_REVEALED"):
        b.claim_htlc(pair.params, h, preimage, pair.bob)
    b.advance_time(DURATION)
    b.conclude(pair.params, pair.bob)  # before the HTLC's expiry: the reveal decides
    before = b.balance(pair.bob, tok)
    b.withdraw(pair.params, 1, pair.bob, tok)
    assert b.balance(pair.bob, tok) == before + 120


def test_htlc_refunded_after_expiry(pair: Pair):
    b, sol = pair.backend, pair.sol
    h, _ = pair.htlc(3, 1, sol, SOL // 2, b"refund")  # Bob pays Alice, Alice never reveals
    locked = pair.pay(1, AddHtlc(h))
    with pytest.raises(LedgerError, match="register the latest state first"):
        b.refund_htlc(pair.params, h, pair.bob)
    b.register(pair.params, locked, pair.bob)
    b.advance_time(DURATION)
    with pytest.raises(LedgerError, match="HTLC_UNRESOLVED"):
        b.refund_htlc(pair.params, h, pair.bob)
    b.advance_time(h.native_expiry - b.now() + 1)
    b.refund_htlc(pair.params, h, pair.bob)
    acct = pc.ChannelAccount.decode(
        b.ledger.account(pc.channel_pda(b.program_id, pair.cid)[0]).data
    )
    assert acct.payout[0] == (2 * SOL, SOL)  # Bob's 0.5 SOL came back to him


# ---- bad inputs: rejected by the program, nothing moved -----------------------------------


def _rejected(pair: Pair, match: str, action) -> None:
    before = pair.snapshot()
    with pytest.raises(LedgerError, match=match):
        action()
    assert pair.snapshot() == before


def test_forged_signature(pair: Pair):
    latest = pair.pay(0, Transfer(pair.sol, SOL))
    sig = bytearray(latest.signatures[1])
    sig[0] ^= 1
    forged = SignedState(latest.state, (latest.signatures[0], bytes(sig)))
    carol = pair.backend.create_account()
    _rejected(pair, "ED25519_", lambda: pair.backend.register(pair.params, forged, carol))


def test_signature_for_another_channel_or_program(pair: Pair, backend):
    b = pair.backend
    carol = b.create_account()
    other = msgspec.structs.replace(pair.params, nonce=bytes(32))
    other_cid = b.channel_id(other)
    state = msgspec.structs.replace(pair.m[0].state, channel_id=other_cid, version=5)
    sigs = tuple(
        b.authority(other, acct, i).sign(other, state, None)
        for i, acct in enumerate((pair.alice, pair.bob))
    )
    _rejected(
        pair,
        "WRONG_CHANNEL",
        lambda: b.register(pair.params, SignedState(state, sigs), carol),
    )
    # the same state signed for another deployment of the program
    from chenilles_solana.authority import SolanaAuthority

    elsewhere = Pubkey.new_unique()
    state = msgspec.structs.replace(pair.m[0].state, version=5)
    sigs = tuple(
        SolanaAuthority(elsewhere, acct.keypair).sign(pair.params, state)
        for acct in (pair.alice, pair.bob)
    )
    _rejected(pair, "ED25519_", lambda: b.register(pair.params, SignedState(state, sigs), carol))


def test_stale_version_and_non_conserving_state(pair: Pair):
    b, sol = pair.backend, pair.sol
    v1 = pair.pay(0, Transfer(sol, 1))
    v2 = pair.pay(0, Transfer(sol, 1))
    carol = b.create_account()
    b.register(pair.params, v2, carol)
    _rejected(pair, "STALE_VERSION", lambda: b.challenge(pair.params, v1, carol))
    # The registered version itself, asked again: nothing is sent, nothing changes.
    before = pair.snapshot()
    assert b.challenge(pair.params, v2, carol).txid == ""
    assert pair.snapshot() == before
    # both keys sign a state that creates money: the program refuses it
    bad = msgspec.structs.replace(
        v2.state,
        version=9,
        balances=(AssetBalances(sol, (3 * SOL, 3 * SOL)), v2.state.balances[1]),
    )
    sigs = tuple(
        b.authority(pair.params, acct, i).sign(pair.params, bad, None)
        for i, acct in enumerate((pair.alice, pair.bob))
    )
    _rejected(
        pair,
        r"NOT_CONSERVING \(custom program error 0xf\)",
        lambda: b.challenge(pair.params, SignedState(bad, sigs), carol),
    )


def test_attacker_substituted_accounts(pair: Pair):
    """The backend never builds these; an attacker sending raw instructions gets named
    program errors and moves nothing."""
    b = pair.backend
    final = pair.pay(0, Close())
    b.register(pair.params, final, pair.alice)
    b.conclude(pair.params, pair.alice)
    chan = pc.channel_pda(b.program_id, pair.cid)[0]
    mint = b.test_mint
    mallory = b.create_account()
    mallory_ata = spl.associated_token_address(mallory.pubkey, mint)
    vault = pc.vault_pda(b.program_id, chan, mint)[0]

    def send(ix):
        return lambda: b.ledger.send("withdraw", [ix], [mallory.keypair])

    steal = pc.withdraw_ix(b.program_id, chan, 0, mallory_ata, asset=1, vault=vault)
    _rejected(pair, r"BAD_TOKEN_ACCOUNT \(custom program error 0x21\)", send(steal))
    fake_vault = pc.withdraw_ix(
        b.program_id,
        chan,
        0,
        spl.associated_token_address(pair.alice.pubkey, mint),
        asset=1,
        vault=mallory_ata,
    )
    _rejected(pair, r"BAD_VAULT \(custom program error 0x20\)", send(fake_vault))
    sol_to_mallory = pc.withdraw_ix(b.program_id, chan, 0, mallory.pubkey)
    _rejected(pair, "WRONG_PARTICIPANT_ACCOUNT", send(sol_to_mallory))


def test_amounts_must_fit_u64(backend):
    pair = Pair(backend, deposits_sol=(2**64, 0), deposits_tok=(0, 0))
    with pytest.raises(AmountOutOfRange):
        pair.m[0].open()
    with pytest.raises(AmountOutOfRange):
        backend.fund(pair.params, 0, pair.alice, pair.sol, 2**64)


def test_underfunded_channel_returns_deposits(backend):
    pair = Pair(backend, deposits_sol=(SOL, SOL), deposits_tok=(0, 0))
    pair.run(0, pair.m[0].open())
    v0 = pair.history[-1]
    backend.fund(pair.params, 0, pair.alice, pair.sol, SOL)  # Bob never funds
    with pytest.raises(LedgerError, match="ALREADY_FUNDED"):
        backend.fund(pair.params, 0, pair.alice, pair.sol, SOL)
    backend.register(pair.params, v0, pair.alice)
    backend.advance_time(DURATION)
    backend.conclude(pair.params, pair.alice)
    before = backend.balance(pair.alice, pair.sol)
    r = backend.withdraw(pair.params, 0, pair.alice, pair.sol)
    # Alice opened the channel: with nothing left for Bob, her withdraw closed its accounts
    assert r.rent == -(
        backend.ledger.rent(pc.CHANNEL_ACCOUNT_SIZE) + backend.ledger.rent(spl.TOKEN_ACCOUNT_SIZE)
    )
    assert backend.balance(pair.alice, pair.sol) == before + SOL - r.fee - r.rent


def test_only_the_rent_payers_withdraw_closes_the_accounts(pair: Pair):
    """Bob (who did not open the channel) takes everything and withdraws first: his
    withdraws pay him and leave the accounts open (their rent is not his to book). Alice's
    withdraw of a zero payout then closes them and books her rent back; a stranger's close
    afterwards finds nothing, and nothing else moves."""
    b, sol, tok = pair.backend, pair.sol, pair.tok
    final = pair.pay(0, Transfer(sol, 2 * SOL), Transfer(tok, 500))
    final = pair.pay(0, Close())
    assert final.state.free(sol) == (0, 3 * SOL) and final.state.free(tok) == (0, 500)
    b.register(pair.params, final, pair.bob)
    b.conclude(pair.params, pair.bob)
    chan = pc.channel_pda(b.program_id, pair.cid)[0]
    for asset in (sol, tok):
        assert b.withdraw(pair.params, 1, pair.bob, asset).rent == 0
    assert b.ledger.account(chan) is not None
    before = b.balance(pair.alice, sol)
    r = b.withdraw(pair.params, 0, pair.alice, sol)
    rent = b.ledger.rent(pc.CHANNEL_ACCOUNT_SIZE) + b.ledger.rent(spl.TOKEN_ACCOUNT_SIZE)
    assert r.rent == -rent and b.balance(pair.alice, sol) == before + rent - r.fee
    assert b.ledger.account(chan) is None
    assert b.withdraw(pair.params, 0, pair.alice, tok).txid == ""
    with pytest.raises(LedgerError, match="WRONG_CHANNEL_ACCOUNT"):
        b._send(
            "close_accounts",
            [pc.close_accounts_ix(b.program_id, chan, pair.alice.pubkey)],
            [pair.bob.keypair],
        )


def test_deployment_names_the_program_and_an_apps_program(pair: Pair, backend):
    """What the node stores with each channel and checks at every start (``Deployments``):
    the channel program, and an app channel's program; an app bound to nothing is an
    error (the channel is quarantined, loudly)."""
    program = backend.program_id
    assert backend.deployment(pair.params) == f"program {program}"
    with_app = msgspec.structs.replace(pair.params, app="stand-in")
    with pytest.raises(InvalidParams, match="stand-in"):
        backend.deployment(with_app)
    backend.use_app("stand-in", address=str(program))  # any deployed program will do
    assert backend.deployment(with_app) == f"program {program}, app stand-in at {program}"
