"""The Solana backend's URL path, end to end: the devnet server in its own process, the
backend connected through the plugin factory as a node connects, two real ChannelMachines
paying off-chain, every on-chain step over JSON-RPC. Balances are checked to the lamport and
token unit; the event stream comes from getSignaturesForAddress/getTransaction.

One server per module; 50 ms slots, and a 2 s challenge period the test waits out in real
time (the chain's clock is wall time): the force close takes ~3 s.
"""

from __future__ import annotations

import hashlib
import time

import pytest
from chenilles_solana import program_client as pc
from chenilles_solana import spl_token as spl
from chenilles_solana.backend import SolanaAccount, SolanaBackend
from chenilles_solana.ledger import RpcLedger
from solders.keypair import Keypair

from chenilles_hub import plugins
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
from tests.node.test_server_harness import wait_for

from .devnet_harness import DevnetProc

# One worker per module under xdist, so the module's one server serves all its tests.
pytestmark = [
    pytest.mark.solana,
    pytest.mark.devnet,
    pytest.mark.xdist_group("solana-devnet-backend"),
]

SOL = 1_000_000_000
DURATION = 2  # seconds of challenge period


@pytest.fixture(scope="module")
def dn(tmp_path_factory):
    proc = DevnetProc(tmp_path_factory.mktemp("devnet") / "data", slot_ms=50)
    yield proc
    assert proc.stop() == 0


def connect(dn: DevnetProc, **options) -> SolanaBackend:
    backend = plugins.backend("solana").connect(
        dn.url,
        program_id=dn.ready["program_id"],
        test_mint=dn.ready["test_mint"],
        mint_authority=dn.ready["test_mint_authority"],
        **options,
    )
    assert isinstance(backend, SolanaBackend)
    return backend


@pytest.fixture(scope="module")
def backend(dn):
    b = connect(dn)
    yield b
    b.close()


class Pair:
    """Alice (participant 0) and Bob (1), their machines, and the channel on the backend."""

    def __init__(self, backend: SolanaBackend) -> None:
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
        self.deposits = {self.sol: (2 * SOL, SOL), self.tok: (500, 0)}
        init = initial_state(self.cid, self.params.assets, self.deposits)
        self.m = [
            ChannelMachine(self.params, self.cid, i, backend.authority(self.params, acct, i), init)
            for i, acct in enumerate((self.alice, self.bob))
        ]

    def account(self, i: int) -> SolanaAccount:
        return (self.alice, self.bob)[i]

    def run(self, who: int, effects) -> SignedState:
        queue = [(1 - who, e.message) for e in effects if isinstance(e, Send)]
        while queue:
            to, msg = queue.pop(0)
            out = self.m[to].receive(msg, self.backend.now())
            queue += [(1 - to, e.message) for e in out if isinstance(e, Send)]
        latest = self.m[0].latest
        assert latest is not None and latest == self.m[1].latest
        return latest

    def open_and_fund(self) -> None:
        self.run(0, self.m[0].open())
        for i in (0, 1):
            for asset, amounts in self.deposits.items():
                if amounts[i]:
                    self.backend.fund(self.params, i, self.account(i), asset, amounts[i])

    def pay(self, who: int, *updates) -> SignedState:
        return self.run(who, self.m[who].propose(tuple(updates), self.backend.now()))

    def balances(self) -> list[int]:
        b = self.backend
        return [b.balance(a, x) for a in (self.alice, self.bob) for x in (self.sol, self.tok)]


def test_connect_needs_a_real_program_id(dn):
    factory = plugins.backend("solana")
    with pytest.raises(ValueError, match="needs program_id"):
        factory.connect(dn.url)
    with pytest.raises(ValueError, match="no program at"):
        factory.connect(dn.url, program_id=dn.ready["test_mint"])  # an account, not code
    with pytest.raises(ValueError, match="go together"):
        factory.connect(dn.url, program_id=dn.ready["program_id"], test_mint=dn.ready["test_mint"])


def test_backend_over_rpc_describes_the_devnet(backend, dn):
    assert isinstance(backend, ChainBackend)
    assert isinstance(backend.ledger, RpcLedger)
    assert str(backend.program_id) == dn.ready["program_id"]
    assert abs(backend.now() - time.time()) < 3  # the Clock sysvar, read over RPC
    acct = backend.create_account()
    # airdropped SOL less its token account's rent and the fee (its and the mint
    # authority's signatures)
    assert backend.balance(acct, Asset(backend.chain, "native")) == 100 * SOL - 2_039_280 - 10_000
    assert backend.balance(acct, Asset(backend.chain, str(backend.test_mint))) == 10**12
    before = backend.now()
    backend.advance_time(10)  # the devnet server's devnetAdvanceClock (a real cluster: refused)
    assert backend.now() >= before + 10


def test_account_from_key_over_rpc(backend):
    seed = hashlib.sha256(b"devnet backend test key").digest()
    acct = backend.account_from_key(seed.hex())
    assert acct.pubkey == Keypair.from_seed(seed).pubkey()
    assert backend.account_from_key(bytes(Keypair.from_seed(seed))).pubkey == acct.pubkey
    before = backend.balance(acct, Asset(backend.chain, "native"))
    backend.ledger.airdrop(acct.pubkey, SOL)
    assert backend.balance(acct, Asset(backend.chain, "native")) == before + SOL


def test_cooperative_close_with_sol_and_tokens(backend, dn):
    pair = Pair(backend)
    backend.poll_events()  # skip what came before
    pair.open_and_fund()
    events = backend.poll_events()
    funded = [e for e in events if isinstance(e, Funded) and e.channel_id == pair.cid]
    assert [(e.asset, e.participant, e.amount) for e in funded] == [
        (pair.sol, 0, 2 * SOL),
        (pair.tok, 0, 500),
        (pair.sol, 1, SOL),
    ]
    # The devnet's slot follows the wall clock (400 ms): the funding may fit in the slot of
    # the poll before it. The feed reports the next slot once it comes.
    if not any(isinstance(e, NewBlock) and e.height > 0 for e in events):
        wait_for(
            lambda: any(isinstance(e, NewBlock) and e.height > 0 for e in backend.poll_events()),
            timeout=5,
            what="a NewBlock from the devnet",
        )
    start = pair.balances()

    pair.pay(0, Transfer(pair.sol, SOL // 2))
    pair.pay(0, Transfer(pair.tok, 200))
    pair.pay(1, Transfer(pair.sol, SOL // 10))
    h = Htlc(1, 0, pair.sol, SOL // 4, payment_hash(b"p" * 32), backend.now() + 7200, 0)
    h = Htlc(1, 0, pair.sol, SOL // 4, h.payment_hash, h.expiry, backend.native_expiry(h.expiry))
    pair.pay(0, AddHtlc(h))
    pair.pay(1, SettleHtlc(1, b"p" * 32))
    final = pair.pay(0, Close())
    assert final.state.final
    receipt = backend.close_cooperative(pair.params, final, pair.bob)
    assert receipt.fee == 15000 and receipt.cost > 0 and receipt.block is not None
    a_sol, b_sol = final.state.free(pair.sol)
    a_tok, b_tok = final.state.free(pair.tok)
    assert pair.balances() == [
        start[0] + a_sol,
        start[1] + a_tok,
        start[2] + b_sol - receipt.fee,
        start[3] + b_tok,
    ]
    assert a_sol + b_sol == 3 * SOL and a_tok + b_tok == 500
    assert Concluded(pair.cid, final.version) in backend.poll_events()
    # asked again (after a reorg the node closes once more): nothing more is sent
    assert backend.close_cooperative(pair.params, final, pair.bob).txid == ""
    # the transaction on the devnet, as a third-party client sees it
    got = dn.call("getTransaction", [receipt.txid])
    assert got["meta"]["fee"] == receipt.fee and got["meta"]["err"] is None


def test_force_close_stale_state_refuted_htlc_claimed(backend):
    pair = Pair(backend)
    pair.open_and_fund()
    old = pair.pay(1, Transfer(pair.sol, SOL // 2))  # Bob -> Alice: Bob would like to undo it
    preimage = hashlib.sha256(b"force close").digest()
    expiry = backend.now() + 7200
    h = Htlc(7, 0, pair.tok, 120, payment_hash(preimage), expiry, backend.native_expiry(expiry))
    latest = pair.pay(0, AddHtlc(h))  # Alice offers Bob 120 tokens against the preimage
    backend.poll_events()

    # Bob registers the stale state; Alice's watcher sees it and refutes with the latest
    backend.register(pair.params, old, pair.bob)
    registered = [e for e in backend.poll_events() if isinstance(e, Registered)]
    assert [(e.channel_id, e.version) for e in registered] == [(pair.cid, old.version)]
    deadline = registered[0].timeout
    assert deadline - backend.now() in (DURATION - 1, DURATION)
    backend.challenge(pair.params, latest, pair.alice)
    assert [e.version for e in backend.poll_events() if isinstance(e, Registered)] == [
        latest.version
    ]
    with pytest.raises(LedgerError, match="STALE_VERSION"):
        backend.challenge(pair.params, old, pair.bob)
    # Bob enforces his HTLC on chain: the preimage is revealed in the program's registry
    backend.claim_htlc(pair.params, h, preimage, pair.bob)
    revealed = [e for e in backend.poll_events() if isinstance(e, PreimageRevealed)]
    assert [(e.payment_hash, e.preimage) for e in revealed] == [(h.payment_hash, preimage)]
    with pytest.raises(LedgerError, match="CHALLENGE_PERIOD_ACTIVE"):
        backend.conclude(pair.params, pair.alice)

    while backend.now() < deadline:  # the devnet's clock is wall time
        time.sleep(0.1)
    backend.conclude(pair.params, pair.alice)
    assert Concluded(pair.cid, latest.version) in backend.poll_events()

    def payout(i: int, asset: Asset) -> int:
        return latest.state.free(asset)[i] + (120 if (i, asset) == (1, pair.tok) else 0)

    # Bob first (he did not pay the rent: his withdraws only pay him)
    for asset in (pair.sol, pair.tok):
        before = backend.balance(pair.bob, asset)
        receipt = backend.withdraw(pair.params, 1, pair.bob, asset)
        fee = receipt.fee if asset == pair.sol else 0
        assert receipt.rent == 0
        assert backend.balance(pair.bob, asset) == before + payout(1, asset) - fee, asset
    with pytest.raises(LedgerError, match="ALREADY_WITHDRAWN"):  # the same tx again: refused
        backend.withdraw(pair.params, 1, pair.bob, pair.sol)
    # Alice opened the channel: her withdraw pays her both assets and closes the accounts
    before = {a: backend.balance(pair.alice, a) for a in (pair.sol, pair.tok)}
    receipts = [backend.withdraw(pair.params, 0, pair.alice, a) for a in (pair.sol, pair.tok)]
    rent = backend.ledger.rent(pc.CHANNEL_ACCOUNT_SIZE) + backend.ledger.rent(
        spl.TOKEN_ACCOUNT_SIZE
    )
    assert [r.rent for r in receipts] == [-rent, 0] and receipts[1].txid == ""
    spent = receipts[0].fee + receipts[0].rent
    assert backend.balance(pair.alice, pair.sol) == before[pair.sol] + payout(0, pair.sol) - spent
    assert backend.balance(pair.alice, pair.tok) == before[pair.tok] + payout(0, pair.tok)
    assert backend.ledger.account(pc.channel_pda(backend.program_id, pair.cid)[0]) is None
    # the conclusion checked again at depth: the chain has it, nothing is sent
    assert backend.conclude(pair.params, pair.alice).txid == ""


def test_event_feed_from_a_slot(backend, dn):
    """A node restarted with from_block sees nothing older than that slot."""
    pair = Pair(backend)
    pair.open_and_fund()
    later = dn.call("getSlot") + 1
    fresh = connect(dn, from_block=later)
    try:
        assert not [e for e in fresh.poll_events() if isinstance(e, Funded)]
        everything = connect(dn)
        try:
            funded = [e for e in everything.poll_events() if isinstance(e, Funded)]
            assert any(e.channel_id == pair.cid for e in funded)
        finally:
            everything.close()
    finally:
        fresh.close()


def test_event_feed_pages_back_through_bursts(backend, dn):
    """More program transactions between two polls than one getSignaturesForAddress page
    holds: the feed pages back with ``before`` and loses none (pages of 2 here)."""
    watcher = connect(dn)
    try:
        watcher.poll_events()
        assert isinstance(watcher.ledger, RpcLedger)
        watcher.ledger.PAGE = 2
        pairs = [Pair(backend) for _ in range(2)]
        for pair in pairs:
            pair.open_and_fund()
        funded = [e for e in watcher.poll_events() if isinstance(e, Funded)]
        assert [(e.channel_id, e.participant, e.amount) for e in funded] == [
            (pair.cid, i, amount)
            for pair in pairs
            for i, amount in ((0, 2 * SOL), (0, 500), (1, SOL))
        ]
        assert not [e for e in watcher.poll_events() if isinstance(e, Funded)]
    finally:
        watcher.close()


def test_a_real_cluster_is_read_at_finalized_and_the_devnet_at_confirmed(dn):
    """Solana has no Reorged: on a real cluster nothing the node acts on may be rolled back,
    so every read waits for finalized blocks unless the operator chooses otherwise."""
    for chain, options, expected in (
        ("solana:devnet", {}, "finalized"),
        ("solana:mainnet", {}, "finalized"),
        ("solana:localnet", {}, "confirmed"),
        ("solana:devnet", {"commitment": "confirmed"}, "confirmed"),
    ):
        backend = connect(dn, chain=chain, **options)
        try:
            assert isinstance(backend.ledger, RpcLedger)
            assert str(backend.ledger._commitment) == expected, chain
        finally:
            backend.close()
