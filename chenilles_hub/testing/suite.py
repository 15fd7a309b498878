"""The conformance suite: what every ``ChainBackend`` must do, as tests on its real ledger.

A backend runs it by subclassing ``BackendConformance`` in a test module and giving the
``conformance_backend`` fixture (a fresh backend per test), or with no code at all:
``pytest --pyargs chenilles_hub.testing.test_conformance --chenilles-backend NAME``
(the plugin's default fixture builds ``embedded()``, or ``connect(URL)`` with
``--chenilles-url``). See docs/writing-a-backend.md, section "Conformance".

The tests know nothing of any chain: they drive channels through the backend's own
methods (``Duo``) and ask ``BackendInfo`` where a chain genuinely differs (a single
funder; a penalty instead of a refutation; reorgs). Money is checked to the base unit:
each wallet's balance must move by exactly what the receipts and the states say.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Protocol

import msgspec
import pytest

from ..backend import (
    FEE_OPERATIONS,
    BackendInfo,
    ChainBackend,
    ClockFetcher,
    Concluded,
    EventFetcher,
    Funded,
    LedgerError,
    NewBlock,
    PreimageRevealed,
    Registered,
    Reorged,
    missing_methods,
)
from ..core import AssetBalances, ChannelError, Close, Htlc, SettleHtlc, SignedState, Transfer
from ..core.authority import newer_version_wins
from .duo import Duo, holdings, native

__all__ = ["REFUSED", "BackendConformance", "ReorgHook"]


class ReorgHook(Protocol):
    """What the reorg test needs from a test ledger: ``mark()`` remembers the tip, and
    ``reorg(mark, drop)`` retracts every block after it and mines a longer branch without
    the transactions ``drop`` (Bitcoin: ``KernelChain.reorg``; EVM: a snapshot reverted)."""

    def mark(self) -> object: ...

    def reorg(self, mark: object, drop: Sequence[str]) -> None: ...


#: Errors a backend may raise for input it refuses: the ledger's verdict, or the core's
#: typed refusal before anything is sent. Anything else (an assertion, a KeyError) fails.
REFUSED = (LedgerError, ChannelError)


def _opened(backend: ChainBackend) -> Duo:
    duo = Duo.create(backend).open()
    duo.poll()
    return duo


def _paid(duo: Duo) -> SignedState:
    """Two payments each way, so both sides hold a balance (single-funder chains too)."""
    amount = duo.deposits[native(duo.backend)][0]
    duo.update(0, Transfer(native(duo.backend), amount // 4))
    duo.update(1, Transfer(native(duo.backend), amount // 20))
    return duo.latest


def _with_htlc(
    backend: ChainBackend, lead_periods: int
) -> tuple[Duo, tuple[int, int], int, Htlc, bytes]:
    """An open, paid channel with an HTLC of a tenth of Alice's deposit from Alice to Bob,
    expiring ``lead_periods`` challenge periods from now; also the books' start."""
    duo = Duo.create(backend)
    start = duo.start
    duo.open()
    _paid(duo)
    amount = duo.deposits[native(backend)][0] // 10
    htlc, preimage = duo.htlc(1, 0, amount, lead=lead_periods * duo.params.challenge_duration)
    return duo, start, amount, htlc, preimage


@pytest.mark.conformance
class BackendConformance:
    """Subclass as ``class TestMyChain(BackendConformance)`` to run it on your backend."""

    # --- the chain, its clock and its blocks -------------------------------------------------

    def test_describes_itself(self, conformance_backend: ChainBackend) -> None:
        b = conformance_backend
        assert isinstance(b, ChainBackend)
        assert isinstance(b.info, BackendInfo) and b.info.name and b.info.version
        assert b.info.dispute in ("newest_wins", "penalty")
        assert b.assets() and all(a.chain == b.chain for a in b.assets())
        native(b)
        model = b.time_model()
        assert model.block_interval_ms > 0 and model.finality_depth >= 1
        # now() first: on a live chain the clock moves between two reads, and a block
        # time read later is never earlier than a now read before it
        now = b.now()
        assert b.next_block_time() >= now > 0
        assert b.native_expiry(b.now() + 7200) is not None
        for operation in FEE_OPERATIONS:
            assert b.estimate_fee(operation) >= 0, operation
        with pytest.raises(ValueError):
            b.estimate_fee("no-such-operation")

    def test_plays_every_required_role(self, conformance_backend: ChainBackend) -> None:
        """Each role's methods are there (``chenilles_hub.backend.REQUIRED_ROLES``): the
        node refuses to start on a backend lacking one, naming the role and the method."""
        assert missing_methods(conformance_backend) == {}

    def test_time_advances_and_blocks_are_reported(self, conformance_backend: ChainBackend) -> None:
        b = conformance_backend
        b.poll_events()
        before = b.now()
        b.advance_time(3600)
        assert b.now() >= before + 3600
        now = b.now()
        assert b.next_block_time() >= now
        blocks = [e for e in b.poll_events() if isinstance(e, NewBlock)]
        assert blocks, "advancing time mined no block that poll_events reported"
        assert blocks[-1].time >= before + 3600
        assert [e.height for e in blocks] == sorted({e.height for e in blocks})
        assert not [e for e in b.poll_events() if not isinstance(e, NewBlock)]

    def test_an_account_loads_from_its_key(self, conformance_backend: ChainBackend) -> None:
        """What a node on a real network signs with (``[chains.NAME] account_key``): a
        32-byte secret as 64 hex digits, or as bytes; nothing is funded for it."""
        b = conformance_backend
        secret = secrets.token_hex(32)
        account = b.account_from_key(secret)
        assert (
            account.chain_key
            and account.chain_key == b.account_from_key(bytes.fromhex(secret)).chain_key
        )
        assert b.account_from_key(secrets.token_hex(32)).chain_key != account.chain_key
        assert all(b.balance(account, asset) == 0 for asset in b.assets())
        for bad in ("zz-secret-zz", secret[:10]):
            with pytest.raises(ValueError) as refused:
                b.account_from_key(bad)
            assert bad not in str(refused.value), "the refusal echoes the key"

    # --- funding -----------------------------------------------------------------------------

    def test_funding_is_reported_held_and_charged_exactly(
        self, conformance_backend: ChainBackend
    ) -> None:
        b = conformance_backend
        duo = Duo.create(b)
        coin = native(b)
        before = duo.start
        duo.open()
        funded = [e for e in duo.poll() if isinstance(e, Funded)]
        deposits = duo.deposits[coin]
        assert sorted((e.participant, e.amount) for e in funded) == [
            (i, n) for i, n in enumerate(deposits) if n
        ]
        assert all(e.channel_id == duo.channel_id and e.asset == coin for e in funded)
        assert holdings(duo) == {coin: deposits}
        for who in (0, 1):
            assert duo.wallet(who) == before[who] - deposits[who] - duo.spent(who)
        for _, receipt in duo.receipts:
            assert receipt.operation == "fund" and receipt.txid and receipt.fee >= 0

    def test_events_fetched_on_another_thread_are_the_polls_events(
        self, conformance_backend: ChainBackend
    ) -> None:
        """The optional ``EventFetcher`` role: the node calls ``fetch_events`` on a thread
        of its own while its thread goes on using the backend; ``apply_events`` then
        reports what ``poll_events`` would have, once."""
        b = conformance_backend
        if not isinstance(b, EventFetcher):
            pytest.skip("no EventFetcher role: the node polls this backend on its own thread")
        duo = Duo.create(b)
        coin = native(b)
        duo.poll()  # what came before the channel
        duo.open()
        if b.fetches_off_thread():
            with ThreadPoolExecutor(1) as pool:
                fetching = pool.submit(b.fetch_events)
                reads = 0
                while not fetching.done() or reads == 0:  # the node's thread reads on
                    assert b.now() > 0 and holdings(duo)
                    reads += 1
                fetched = fetching.result()
        else:
            fetched = b.fetch_events()
        events = b.apply_events(fetched)
        funded = [e for e in events if isinstance(e, Funded) and e.channel_id == duo.channel_id]
        assert sorted((e.participant, e.amount) for e in funded) == [
            (i, n) for i, n in enumerate(duo.deposits[coin]) if n
        ]
        again = [e for e in b.poll_events() if isinstance(e, Funded)]
        assert not [e for e in again if e.channel_id == duo.channel_id], "reported twice"

    def test_the_clock_fetched_on_another_thread_is_the_watchers_clock(
        self, conformance_backend: ChainBackend
    ) -> None:
        """The optional ``ClockFetcher`` role: right after a fetch, on the reading thread,
        ``fetch_clock`` answers what ``next_block_time`` would (the watcher judges
        deadlines with it): never earlier than ``now()`` before it, and no later than
        ``next_block_time()`` once the read is applied (a backend that keeps its tip a
        moment on the node's thread takes the one the fetch read with it; a chain whose
        next block may carry an earlier time than its tip's, as Bitcoin's may, could fail
        it on such a block, which no devnet mines); and again after time passed."""
        b = conformance_backend
        if not isinstance(b, ClockFetcher) or not isinstance(b, EventFetcher):
            pytest.skip("no ClockFetcher role: the watcher reads the clock on the node's thread")

        def fetch_then_clock() -> tuple[object, int]:
            fetched = b.fetch_events()
            return fetched, b.fetch_clock(fetched)

        b.poll_events()
        for _ in range(2):
            before = b.now()
            if b.fetches_off_thread():
                with ThreadPoolExecutor(1) as pool:
                    fetched, clock = pool.submit(fetch_then_clock).result()
            else:
                fetched, clock = fetch_then_clock()
            b.apply_events(fetched)
            assert before <= clock <= b.next_block_time(), (before, clock)
            b.advance_time(3600)

    def test_a_reorg_is_reported_and_takes_the_deposits_back(
        self, conformance_backend: ChainBackend, conformance_reorg: ReorgHook | None
    ) -> None:
        b = conformance_backend
        if not b.info.reorgs:
            pytest.skip("this chain does not reorganize (BackendInfo.reorgs)")
        if conformance_reorg is None:
            pytest.skip("no conformance_reorg fixture: give one to test reorgs")
        duo = Duo.create(b)
        duo.sign()
        duo.poll()
        mark = conformance_reorg.mark()
        duo.fund()
        assert [e for e in duo.poll() if isinstance(e, Funded)]
        funding = [r.txid for _, r in duo.receipts]
        conformance_reorg.reorg(mark, funding)
        events = duo.poll()
        reorged = [e for e in events if isinstance(e, Reorged)]
        assert reorged, f"no Reorged among {events}"
        assert reorged[0].depth >= 1
        assert set(funding) <= {t for e in reorged for t in e.txids}
        assert all(not any(v) for v in holdings(duo).values()), "a retracted deposit counts"

    def test_a_wrong_funding_is_refused(self, conformance_backend: ChainBackend) -> None:
        b = conformance_backend
        duo = Duo.create(b)
        duo.sign()
        before = duo.start[0]
        with pytest.raises(REFUSED):  # more than the wallet holds
            b.fund(duo.params, 0, duo.accounts[0], native(b), before + 1)
        assert all(not any(v) for v in holdings(duo).values())
        # this channel's events only: on a real node's ledger other cases' channels report too
        assert not [
            e for e in duo.poll() if isinstance(e, Funded) and e.channel_id == duo.channel_id
        ]

    # --- cooperative close -------------------------------------------------------------------

    def test_cooperative_close_pays_the_final_state_to_the_unit(
        self, conformance_backend: ChainBackend
    ) -> None:
        b = conformance_backend
        duo = Duo.create(b)
        start = duo.start
        duo.open()
        _paid(duo)
        final = duo.update(0, Close())
        assert final.state.final
        duo.act(1, lambda a: b.close_cooperative(duo.params, final, a))
        assert Concluded(duo.channel_id, final.version) in duo.poll()
        again = duo.act(1, lambda a: b.close_cooperative(duo.params, final, a))
        assert again.txid == "" and again.fee == 0, "a close asked again must send nothing"
        duo.settle(rounds=1)
        self._books_balance(duo, start, final)
        assert all(not any(v) for v in holdings(duo).values())

    def test_every_other_asset_funds_and_closes_to_the_unit(
        self, conformance_backend: ChainBackend
    ) -> None:
        """Tokens (ERC-20, SPL...): a channel of each, funded, paid in, closed, withdrawn;
        each wallet's token balance moves by exactly its deposit and its share."""
        b = conformance_backend
        tokens = [a for a in b.assets() if a.token != "native"]
        if not tokens:
            pytest.skip("this ledger holds only its native coin")
        for token in tokens:
            duo = Duo.create(b, asset=token)
            start = (duo.wallet(0, token), duo.wallet(1, token))
            duo.open()
            assert holdings(duo) == {token: duo.deposits[token]}
            duo.update(0, Transfer(token, duo.deposits[token][0] // 3))
            final = duo.update(0, Close())
            duo.act(1, partial(b.close_cooperative, duo.params, final))
            duo.settle(rounds=1)
            for who in (0, 1):
                assert duo.wallet(who, token) == (
                    start[who] - duo.deposits[token][who] + final.state.free(token)[who]
                ), f"{token}, participant {who}"

    def _books_balance(self, duo: Duo, start: tuple[int, int], final: SignedState) -> None:
        """Each wallet ends with what it had, less its deposit and its own fees, plus its
        share of ``final``. Fees the chain took out of the channel itself
        (``TxReceipt.fee_from_channel``) are borne by participant 0, the funder of a
        single-funder chain (Bitcoin: the funder pays commitment and closing fees)."""
        coin = native(duo.backend)
        for who in (0, 1):
            from_channel = duo.channel_fees() if who == 0 else 0
            expected = (
                start[who]
                - duo.deposits[coin][who]
                - duo.spent(who)
                + final.state.free(coin)[who]
                - from_channel
            )
            assert duo.wallet(who) == expected, f"participant {who}"

    # --- disputes ----------------------------------------------------------------------------

    def test_register_conclude_withdraw_after_the_challenge_period(
        self, conformance_backend: ChainBackend
    ) -> None:
        b = conformance_backend
        duo = Duo.create(b)
        start = duo.start
        duo.open()
        latest = _paid(duo)
        now = b.now()
        duo.act(0, lambda a: b.register(duo.params, latest, a))
        registered = [e for e in duo.poll() if isinstance(e, Registered)]
        assert [(e.channel_id, e.version) for e in registered] == [(duo.channel_id, 2)]
        timeout = registered[0].timeout
        assert timeout >= now + duo.params.challenge_duration - b.time_model().inclusion_delay
        # before the period is over, nothing concludes and nothing is paid out
        early = [duo.attempt(w, lambda a: b.conclude(duo.params, a)) for w in (0, 1)]
        assert not [e for e in duo.poll() if isinstance(e, Concluded)], early
        duo.advance_to(timeout)
        duo.settle()
        if b.info.dispute == "newest_wins":  # a penalty chain's sides each sweep their own
            assert any(
                isinstance(e, Concluded) and e.channel_id == duo.channel_id for e in duo.events
            )
        self._books_balance(duo, start, latest)

    def test_double_withdraw_pays_once(self, conformance_backend: ChainBackend) -> None:
        b = conformance_backend
        duo = _opened(b)
        _paid(duo)
        final = duo.update(0, Close())
        duo.act(0, lambda a: b.close_cooperative(duo.params, final, a))
        duo.settle(rounds=1)
        coin = native(b)
        for who in (0, 1):
            before, spent = duo.wallet(who), duo.spent(who)
            again = duo.attempt(who, partial(b.withdraw, duo.params, who, asset=coin))
            assert again is None or (again.txid == "" and again.fee == 0)
            assert duo.wallet(who) == before - (duo.spent(who) - spent)

    def test_stale_registration_is_answered_and_loses(
        self, conformance_backend: ChainBackend
    ) -> None:
        """Bob registers an old state that paid him more; Alice answers with the latest.
        Alice never gets less than the latest state gives her (on penalty chains: all)."""
        b = conformance_backend
        duo = Duo.create(b)
        start = duo.start
        duo.open()
        coin = native(b)
        amount = duo.deposits[coin][0]
        duo.update(0, Transfer(coin, amount // 2))
        stale = duo.latest
        duo.update(1, Transfer(coin, amount // 4))
        duo.update(0, Transfer(coin, 1))
        latest = duo.latest
        duo.act(1, lambda a: b.register(duo.params, stale, a))
        assert any(isinstance(e, Registered) and e.version == stale.version for e in duo.poll())
        duo.act(0, lambda a: b.challenge(duo.params, latest, a))
        again = duo.act(0, lambda a: b.challenge(duo.params, latest, a))
        assert again.txid == "", "an answer asked again must send nothing"
        duo.settle()
        total = sum(duo.deposits[coin])
        alice = duo.wallet(0) - start[0] + duo.deposits[coin][0] + duo.spent(0)
        bob = duo.wallet(1) - start[1] + duo.deposits[coin][1] + duo.spent(1)
        if b.info.dispute == "penalty":
            assert alice == total - duo.channel_fees() and bob == 0
        else:
            assert (alice, bob) == latest.state.free(coin)

    def test_an_older_state_cannot_replace_a_newer_one(
        self, conformance_backend: ChainBackend
    ) -> None:
        b = conformance_backend
        duo = Duo.create(b)
        start = duo.start
        duo.open()
        older = _paid(duo)
        latest = duo.update(0, Transfer(native(b), 1))
        duo.act(0, lambda a: b.register(duo.params, latest, a))
        answer = duo.attempt(1, lambda a: b.challenge(duo.params, older, a))
        assert answer is None or answer.txid == "", "a stale answer was accepted"
        # straight to the ledger, past any check the backend makes before sending
        duo.attempt(1, lambda a: b.register(duo.params, older, a))
        duo.advance_to(max(e.timeout for e in duo.poll() if isinstance(e, Registered)))
        duo.settle()
        self._books_balance(duo, start, latest)

    def test_forged_and_replayed_signatures_are_refused(
        self, conformance_backend: ChainBackend
    ) -> None:
        b = conformance_backend
        duo = _opened(b)
        latest = _paid(duo)
        other = _opened(b)
        _paid(other)
        theirs = other.latest
        wallet, spent = duo.wallet(0), duo.spent(0)
        forged = (
            SignedState(latest.state, (latest.signatures[0], theirs.signatures[1])),
            SignedState(latest.state, (latest.signatures[0], bytes(len(latest.signatures[1])))),
            # another channel's fully signed state, replayed on this one
            theirs,
            # this channel's state under another version number
            SignedState(msgspec.structs.replace(latest.state, version=99), latest.signatures),
        )
        for signed in forged:
            with pytest.raises(REFUSED):
                duo.act(0, partial(b.register, duo.params, signed))
        assert not [e for e in duo.poll() if isinstance(e, Registered)]
        # a refusal may cost a fee (an EVM revert is mined), nothing more
        assert duo.wallet(0) == wallet - (duo.spent(0) - spent)
        assert holdings(duo) == {native(b): duo.deposits[native(b)]}

    def test_two_message_updates_only_where_the_newest_state_wins(
        self, conformance_backend: ChainBackend
    ) -> None:
        """An authority declaring ``newer_version_wins`` has its updates end at the Accept,
        with no revocation of the state before: safe only on a ledger where any newer state
        signed by both overrides a registered older one (``BackendInfo.dispute``)."""
        b = conformance_backend
        duo = _opened(b)
        authority = b.authority(duo.params, duo.accounts[0], 0)
        if newer_version_wins(authority):
            assert b.info.dispute == "newest_wins", (
                "the authority declares newer_version_wins on a ledger that punishes "
                "old states instead: its peers would never revoke them"
            )

    def test_a_non_conserving_state_is_never_enforced(
        self, conformance_backend: ChainBackend
    ) -> None:
        """A state both sides signed that pays out more than the channel holds: the
        authority may refuse to sign it, the ledger must refuse to enforce it."""
        b = conformance_backend
        duo = _opened(b)
        latest = _paid(duo)
        coin = native(b)
        a, c = latest.state.free(coin)
        inflated = msgspec.structs.replace(
            latest.state,
            version=latest.version + 1,
            balances=(AssetBalances(coin, (a + 1_000, c)),),
            final=True,
        )
        try:
            bundles = tuple(
                b.authority(duo.params, acct, i).sign(duo.params, inflated, latest)
                for i, acct in enumerate(duo.accounts)
            )
        except REFUSED:
            return  # never signed: nothing to enforce
        signed = SignedState(inflated, bundles)
        with pytest.raises(REFUSED):
            duo.act(0, lambda acct: b.register(duo.params, signed, acct))
        with pytest.raises(REFUSED):
            duo.act(0, lambda acct: b.close_cooperative(duo.params, signed, acct))
        assert holdings(duo) == {coin: duo.deposits[coin]}

    # --- HTLCs -------------------------------------------------------------------------------

    def test_htlc_claimed_with_its_preimage_during_the_challenge_period(
        self, conformance_backend: ChainBackend
    ) -> None:
        """Alice pays Bob an HTLC and goes silent; Bob registers and claims it on-chain in
        the same tick, while the challenge period runs (the watcher's order)."""
        b = conformance_backend
        duo, start, amount, htlc, preimage = _with_htlc(b, lead_periods=4)
        latest = duo.latest
        duo.act(1, lambda a: b.register(duo.params, latest, a))
        with pytest.raises(REFUSED):
            duo.act(1, lambda a: b.claim_htlc(duo.params, htlc, bytes(32), a))
        duo.act(1, lambda a: b.claim_htlc(duo.params, htlc, preimage, a))
        revealed = [e for e in duo.poll() if isinstance(e, PreimageRevealed)]
        assert [(e.payment_hash, e.preimage) for e in revealed] == [(htlc.payment_hash, preimage)]
        duo.advance_to(htlc.expiry)
        # the payer's refund after the expiry: refused, or without effect (the books below)
        duo.attempt(0, lambda a: b.refund_htlc(duo.params, htlc, a))
        duo.settle()
        coin = native(b)
        a, c = latest.state.free(coin)
        self._books_balance(duo, start, _with_free(latest, coin, (a, c + amount)))

    def test_htlc_refunded_after_its_expiry_not_before(
        self, conformance_backend: ChainBackend
    ) -> None:
        """Bob never reveals: Alice registers, cannot take the HTLC back before its expiry,
        and gets it back after (by ``refund_htlc`` or by the conclusion itself); Bob's
        late claim is refused."""
        b = conformance_backend
        duo, start, _amount, htlc, preimage = _with_htlc(b, lead_periods=2)
        latest = duo.latest
        duo.act(0, lambda a: b.register(duo.params, latest, a))
        with pytest.raises(REFUSED):
            duo.act(0, lambda a: b.refund_htlc(duo.params, htlc, a))
        duo.advance_to(htlc.expiry + 1)
        # the payer's watcher refunds at the expiry (a refusal is fine where the conclusion
        # refunds); a claim after that is refused or without effect (on Bitcoin the
        # payee's script path has no expiry: the payer must be first, as the watcher is)
        duo.attempt(0, lambda a: b.refund_htlc(duo.params, htlc, a))
        duo.attempt(1, lambda a: b.claim_htlc(duo.params, htlc, preimage, a))
        duo.settle()
        self._books_balance(duo, start, _without_htlcs(latest))

    def test_settled_htlc_then_cooperative_close(self, conformance_backend: ChainBackend) -> None:
        b = conformance_backend
        duo = Duo.create(b)
        start = duo.start
        duo.open()
        _paid(duo)
        _, preimage = duo.htlc(1, 0, duo.deposits[native(b)][0] // 10, lead=7200)
        duo.update(1, SettleHtlc(1, preimage))
        final = duo.update(0, Close())
        duo.act(0, lambda a: b.close_cooperative(duo.params, final, a))
        duo.settle(rounds=1)
        self._books_balance(duo, start, final)


def _with_free(signed: SignedState, coin: object, free: tuple[int, int]) -> SignedState:
    balances = tuple(
        AssetBalances(e.asset, free) if e.asset == coin else e for e in signed.state.balances
    )
    state = msgspec.structs.replace(signed.state, balances=balances, htlcs=())
    return SignedState(state, signed.signatures)


def _without_htlcs(signed: SignedState) -> SignedState:
    """``signed`` with each HTLC returned to its payer."""
    state = signed.state
    balances = []
    for entry in state.balances:
        amounts = list(entry.amounts)
        for h in state.htlcs:
            if h.asset == entry.asset:
                amounts[h.payer] += h.amount
        balances.append(AssetBalances(entry.asset, (amounts[0], amounts[1])))
    return SignedState(
        msgspec.structs.replace(state, balances=tuple(balances), htlcs=()), signed.signatures
    )
