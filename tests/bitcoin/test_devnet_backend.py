"""The Bitcoin backend over the URL path: ``connect(url)`` to a devnet server process.

Two accounts, two ``ChannelMachine``s (the harness of the embedded tests), every
transaction through sendrawtransaction into the devnet's mempool and mined by RPC: a
cooperative close, and a revoked commitment punished, with exact balances on-chain. The
accounts' wallets find their coins by scantxoutset; one is reloaded from its key.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chenilles_bitcoin.backend import FAUCET_GRANT, BitcoinBackend
from chenilles_bitcoin.devnet.role import FAUCET_FILE
from chenilles_bitcoin.duties import delayed_sweep
from chenilles_bitcoin.ledger import BitcoindRpcLedger, OutPoint, TransactionRejected
from chenilles_bitcoin.plugin import BitcoinBackendFactory
from chenilles_bitcoin.watch import parse_tx

from chenilles_hub import plugins
from chenilles_hub.backend import (
    Concluded,
    Funded,
    LedgerError,
    NewBlock,
    NotRegistered,
    NotYet,
    Registered,
)
from chenilles_hub.core import Close, Transfer

from .devnet_harness import Devnet, running
from .test_backend_harness import BTC, Channel

pytestmark = [pytest.mark.bitcoin, pytest.mark.devnet]


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    datadir: Path = tmp_path_factory.mktemp("devnet-backend") / "node"
    yield from running(datadir)


def connect(devnet: Devnet, **options: object) -> BitcoinBackend:
    factory = plugins.backend("bitcoin")
    backend = factory.connect(devnet.url, cookie_file=str(devnet.cookie_file), **options)
    assert isinstance(backend, BitcoinBackend) and isinstance(backend.ledger, BitcoindRpcLedger)
    return backend


def test_devnet_command_through_the_factory(tmp_path: Path) -> None:
    argv = BitcoinBackendFactory().devnet_command(str(tmp_path), "127.0.0.1", 0, 2.5)
    assert argv[1:3] == ["-m", "chenilles_bitcoin.devnet"]
    assert argv[argv.index("--block-time") + 1] == "2.5" and argv[argv.index("--port") + 1] == "0"


def test_cooperative_close_over_rpc(devnet: Devnet) -> None:
    backend = connect(devnet)
    channel = Channel.create(backend, (1_000_000, 0))
    alice, bob = channel.accounts
    a0, b0 = channel.start_balances
    assert a0 == b0 == 50 * 100_000_000  # one mature coinbase each, found by scantxoutset
    channel.open()
    backend.poll_events()
    fund = backend.fund(channel.params, 0, alice, BTC, 1_000_000)
    assert fund.block is None  # in the devnet's mempool, not mined
    assert devnet.rpc("getrawmempool") == [fund.txid]
    backend.mine(1)
    events = backend.poll_events()
    assert Funded(channel.channel_id, BTC, 0, 1_000_000) in events
    channel.update(0, Transfer(BTC, 250_000))
    channel.update(1, Transfer(BTC, 50_000))
    final = channel.update(0, Close())
    close = backend.close_cooperative(channel.params, final, alice)
    backend.mine(1)
    assert Concluded(channel.channel_id, final.version) in backend.poll_events()
    wa = backend.withdraw(channel.params, 0, alice, BTC)
    wb = backend.withdraw(channel.params, 1, bob, BTC)
    backend.mine(1)
    balances = final.state.free(BTC)
    assert balances == (800_000, 200_000)
    assert (
        backend.balance(alice, BTC) == a0 - 1_000_000 - fund.fee + balances[0] - close.fee - wa.fee
    )
    assert backend.balance(bob, BTC) == b0 + balances[1] - wb.fee
    # the same account reloaded from its key (a node restart) sees the same coins
    again = backend.account_from_key(alice.secret.hex())
    assert backend.balance(again, BTC) == backend.balance(alice, BTC)
    other = connect(devnet)  # a second process's view of the same chain
    assert other.balance(other.account_from_key(bob.secret), BTC) == backend.balance(bob, BTC)


def test_revoked_commitment_punished_over_rpc(devnet: Devnet) -> None:
    backend = connect(devnet, auto_mine=True)
    channel = Channel.create(backend, (1_000_000, 0))
    alice, bob = channel.accounts
    channel.open()
    backend.fund(channel.params, 0, alice, BTC, 1_000_000)
    channel.update(0, Transfer(BTC, 400_000))
    revoked = channel.latest()
    channel.update(1, Transfer(BTC, 100_000))
    channel.update(0, Transfer(BTC, 1_000))
    backend.poll_events()
    # bob broadcasts version 1, which he revoked; the devnet accepts it (valid signatures)
    cheat = backend.register(channel.params, revoked, bob)
    assert any(isinstance(e, Registered) and e.version == 1 for e in backend.poll_events())
    commitment = parse_tx(backend.ledger.get_raw_tx(cheat.txid) or b"")
    before = backend.balance(alice, BTC)
    justice = backend.challenge(channel.params, channel.latest(), alice)
    for index in range(len(commitment.vout)):
        spender = backend.ledger.find_spending_tx(OutPoint(cheat.txid, index))
        assert spender is not None and parse_tx(spender).GetTxid()[::-1].hex() == justice.txid
    taken = sum(int(o.nValue) for o in commitment.vout)
    assert taken == 1_000_000 - cheat.fee
    assert backend.balance(alice, BTC) == before + taken - justice.fee
    assert backend.conclude(channel.params, bob).txid == ""
    # asked again (the node answers on every block until the chain shows the penalty):
    # nothing more is sent
    assert backend.challenge(channel.params, channel.latest(), alice).txid == ""


def test_unilateral_close_waits_for_csv_by_mempool_policy(devnet: Devnet) -> None:
    backend = connect(devnet, auto_mine=True)
    channel = Channel.create(backend, (1_000_000, 0), challenge=3600)  # 6 blocks
    alice, _ = channel.accounts
    channel.open()
    backend.fund(channel.params, 0, alice, BTC, 1_000_000)
    latest = channel.update(0, Transfer(BTC, 300_000))
    reg = backend.register(channel.params, latest, alice)
    with pytest.raises(NotYet, match="the next in 5 blocks"):
        backend.conclude(channel.params, alice)
    sweep_too_early = delayed_sweep(
        backend.context(channel.params, 0, alice),
        backend.commitment_on_chain(channel.params, alice),
        backend._spender_of,
        lambda _txid: 6,  # taken for mature: the devnet's mempool still knows better
        alice.script_pubkey,
    )
    assert sweep_too_early is not None
    with pytest.raises(TransactionRejected) as early:
        backend.ledger.broadcast(bytes(sweep_too_early.tx.serialize()))
    assert early.value.reason == "non-BIP68-final"  # the devnet's mempool, as Core's
    backend.mine(5)
    before = backend.balance(alice, BTC)
    sweep = backend.conclude(channel.params, alice)
    assert backend.balance(alice, BTC) == before + 1_000_000 - 300_000 - reg.fee - sweep.fee


def test_a_close_older_than_the_ledgers_scan_is_not_taken_for_a_vanished_one(
    devnet: Devnet,
) -> None:
    """Found by review: against bitcoind the ledger finds a spend only in the blocks it
    scans (the last ``scan_depth``). A node back after a longer absence found no spend of
    the funding output and took the close for a registration a reorg took away
    (``NotRegistered``), which sets off a registration of its own on every block. The
    output's absence from the UTXO set says it is spent: a plain refusal."""
    backend = connect(devnet, auto_mine=True)
    channel = Channel.create(backend, (1_000_000, 0), challenge=3600)
    alice, bob = channel.accounts
    channel.open()
    backend.fund(channel.params, 0, alice, BTC, 1_000_000)
    latest = channel.update(0, Transfer(BTC, 300_000))
    backend.register(channel.params, latest, bob)
    backend.mine(5)
    late = connect(devnet)  # alice's node, back after more blocks than it scans
    late.ledger.scan_depth = 2
    with pytest.raises(LedgerError) as refused:
        late.conclude(channel.params, alice)
    assert not isinstance(refused.value, NotRegistered)
    assert "not unspent" in refused.value.reason


def test_a_restarted_backend_reports_what_was_mined_since_from_block(devnet: Devnet) -> None:
    """A node restarting passes ``from_block`` (where its feed stopped): the funding and
    the registration mined while it was down are reported, not skipped (they were, when
    ``connect`` ignored ``from_block`` and the feed started at the tip)."""
    backend = connect(devnet, auto_mine=True)
    channel = Channel.create(backend, (1_000_000, 0))
    alice, _ = channel.accounts
    channel.open()
    stopped_at = devnet.rpc("getblockcount") + 1
    backend.fund(channel.params, 0, alice, BTC, 1_000_000)
    latest = channel.update(0, Transfer(BTC, 300_000))
    backend.register(channel.params, latest, alice)
    restarted = connect(devnet, from_block=stopped_at)
    assert restarted.channel_id(channel.params) == channel.channel_id  # the node's restore
    events = restarted.poll_events()
    assert Funded(channel.channel_id, BTC, 0, 1_000_000) in events
    assert [e.version for e in events if isinstance(e, Registered)] == [latest.version]
    heights = [e.height for e in events if isinstance(e, NewBlock)]
    assert heights == list(range(stopped_at, devnet.rpc("getblockcount") + 1))
    # without it the feed starts at the tip: a first start reports nothing of the past
    fresh = connect(devnet)
    fresh.channel_id(channel.params)
    assert fresh.poll_events() == []


@pytest.mark.parametrize("bad", [-1, "12", 1.5, True])
def test_a_bad_from_block_is_refused(devnet: Devnet, bad: object) -> None:
    with pytest.raises(ValueError, match="from_block"):
        connect(devnet, from_block=bad)


def test_the_faucet_funds_new_accounts_in_one_block(tmp_path: Path) -> None:
    """``faucet_key_file``: ``create_account(fund=True)`` is a payment from the faucet
    ``chenilles devnet`` provisions and one block, not a coinbase and 100 blocks (regtest's
    subsidy halves every 150: past a few hundred blocks a coinbase funds nothing)."""
    datadir = tmp_path / "node"
    for devnet in running(datadir):  # a fresh chain, provisioned as `chenilles devnet` does
        BitcoinBackendFactory().devnet_provision(devnet.url, str(datadir), 0, 0.0)
        key = datadir / FAUCET_FILE
        backend = connect(devnet, faucet_key_file=str(key))
        faucet = backend.account_from_key(key.read_text().strip())
        height = devnet.rpc("getblockcount")
        before = backend.balance(faucet, BTC)
        account = backend.create_account(fund=True)
        assert devnet.rpc("getblockcount") == height + 1
        assert backend.balance(account, BTC) == FAUCET_GRANT
        assert before - backend.balance(faucet, BTC) > FAUCET_GRANT  # the grant and its fee
        # a faucet that cannot pay: a clear refusal, nothing mined
        empty_key = tmp_path / "empty.key"
        empty_key.write_text(backend.create_account(fund=False).secret.hex())
        empty = connect(devnet, faucet_key_file=str(empty_key))
        with pytest.raises(LedgerError, match="the faucet cannot pay"):
            empty.create_account(fund=True)
        assert devnet.rpc("getblockcount") == height + 1
