"""KernelChain: blocks mined here are validated by Bitcoin Core's kernel (libbitcoinkernel)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import coincurve
import pytest
from bitcoin.core import CMutableTransaction, COutPoint, CTxIn, CTxInWitness, CTxOut, CTxWitness, lx
from bitcoin.core.script import (
    OP_CHECKLOCKTIMEVERIFY,
    OP_CHECKSEQUENCEVERIFY,
    OP_CHECKSIG,
    OP_DROP,
    OP_EQUALVERIFY,
    OP_SHA256,
    CScript,
    CScriptWitness,
)
from chenilles_bitcoin.ledger import (
    BlockRejected,
    EventKind,
    KernelChain,
    LedgerError,
    OutPoint,
    TransactionRejected,
    Wallet,
    p2wpkh_script,
    p2wsh_script,
    segwit_v0_sighash,
    sign_digest,
)
from chenilles_bitcoin.ledger.miner import block_subsidy
from chenilles_bitcoin.ledger.txparse import parse_tx
from chenilles_bitcoin.ledger.wallet import FALLBACK_FEE_RATE, fee_for, payment_weight

pytestmark = pytest.mark.bitcoin

KEY = hashlib.sha256(b"test key").digest()
PUB = coincurve.PrivateKey(KEY).public_key.format()


@pytest.fixture
def chain() -> Iterator[KernelChain]:
    with KernelChain() as c:
        yield c


@pytest.fixture
def wallet(chain: KernelChain) -> Wallet:
    w = Wallet(chain)
    w.fund(mature_coins=5)
    return w


def spend_p2wsh(
    outpoint: OutPoint,
    value: int,
    witness_script: bytes,
    stack: list[bytes],
    key: bytes = KEY,
    sequence: int = 0xFFFFFFFF,
    locktime: int = 0,
    fee: int = 500,
) -> bytes:
    """One-input tx spending a P2WSH output; the signature is placed first in the stack."""
    tx = CMutableTransaction(
        [CTxIn(COutPoint(lx(outpoint.txid), outpoint.vout), nSequence=sequence)],
        [CTxOut(value - fee, CScript(p2wpkh_script(PUB)))],
        nLockTime=locktime,
        nVersion=2,
    )
    sig = sign_digest(key, segwit_v0_sighash(tx, 0, witness_script, value))
    tx.wit = CTxWitness([CTxInWitness(CScriptWitness([sig, *stack, witness_script]))])
    return bytes(tx.serialize())


def test_genesis_and_empty_blocks(chain: KernelChain) -> None:
    assert chain.tip_height() == 0
    hashes = chain.mine(10)
    assert len(hashes) == 10 and chain.tip_height() == 10 and chain.tip_hash() == hashes[-1]
    assert chain.tip_time() > chain.median_time_past() - 1
    kinds = [e.kind for e in chain.poll_events()]
    assert kinds.count(EventKind.BLOCK_CONNECTED) == 10
    assert chain.poll_events() == []


def test_mine_and_fund(chain: KernelChain, wallet: Wallet) -> None:
    assert chain.tip_height() == 104
    assert wallet.balance() == 5 * block_subsidy(1)
    dest = p2wpkh_script(PUB)
    op = wallet.fund_output(dest, 123_456)
    assert chain.get_tx_confirmations(op.txid) is None
    assert chain.get_utxo(op) is None  # queued, not confirmed
    chain.mine(1)
    assert chain.get_tx_confirmations(op.txid) == 1
    assert chain.get_utxo(op) == (123_456, dest, 105)
    chain.mine(2)
    assert chain.get_tx_confirmations(op.txid) == 3
    # no estimate on the embedded chain: the wallet pays its fallback rate on the tx's size
    # (one input, two outputs: 141 vB at 2 sat/vB), and the coinbase claimed that fee
    fee = fee_for(payment_weight(1, [dest, wallet.script_pubkey]), FALLBACK_FEE_RATE)
    assert fee == 282
    cb = parse_tx(chain.get_raw_tx(chain.get_block_txids(chain.block_hash(105))[0]) or b"")
    assert cb.outputs[0].value == block_subsidy(105) + fee


def test_spend_p2wpkh_output_is_accepted(chain: KernelChain, wallet: Wallet) -> None:
    other = Wallet(chain, secret=KEY)
    op = wallet.fund_output(other.script_pubkey, 50_000)
    chain.mine(1)
    assert [c.outpoint for c in other.coins()] == [op]  # found on the chain, not told
    raw = other.build_payment([(wallet.script_pubkey, 40_000)])
    txid = chain.broadcast(raw)
    chain.mine(1)
    assert chain.get_tx_confirmations(txid) == 1
    assert chain.get_utxo(op) is None
    assert chain.find_spending_tx(op) == raw


def test_bad_signature_rejected_by_kernel_tip_unchanged(chain: KernelChain, wallet: Wallet) -> None:
    raw = bytearray(wallet.build_payment([(p2wpkh_script(PUB), 10_000)]))
    sig_at = max(raw.rfind(b"\x30\x44"), raw.rfind(b"\x30\x45"))  # DER, 32 or 33-byte r
    assert sig_at > 0
    raw[sig_at + 8] ^= 0x01  # flip a bit inside r
    txid = chain.broadcast(bytes(raw))  # broadcast does not judge scripts: the kernel does
    tip = chain.tip_hash()
    with pytest.raises(TransactionRejected) as info:
        chain.mine(1)
    assert info.value.txid == txid
    assert "script-verify-flag-failed" in info.value.reason
    assert chain.tip_hash() == tip
    assert chain.queued() == []
    assert chain.get_tx_confirmations(txid) is None
    chain.mine(1)  # the chain keeps going
    assert chain.tip_height() == 105


def test_double_spend_rejected(chain: KernelChain, wallet: Wallet) -> None:
    coin = wallet.spendable()[0].outpoint
    first = wallet.build_payment([(p2wpkh_script(PUB), 1_000)])
    wallet.reserved.clear()
    second = wallet.build_payment([(p2wpkh_script(PUB), 2_000)])
    assert parse_tx(first).inputs[0].prevout == parse_tx(second).inputs[0].prevout == coin
    chain.broadcast(first)
    with pytest.raises(TransactionRejected, match="already spent by queued tx"):
        chain.broadcast(second)
    chain.mine(1)
    with pytest.raises(TransactionRejected, match="already spent by confirmed tx"):
        chain.broadcast(second)
    with pytest.raises(TransactionRejected, match="missing input"):
        chain.broadcast(spend_p2wsh(OutPoint("ab" * 32, 0), 10_000, b"\x51", []))
    with pytest.raises(TransactionRejected, match="unparsable"):
        chain.broadcast(b"\x02\x00")


def test_kernel_rejects_in_block_double_spend(chain: KernelChain, wallet: Wallet) -> None:
    """A block spending one output twice (bypassing broadcast) is refused by the kernel."""
    from chenilles_bitcoin.ledger.miner import build_block
    from chenilles_bitcoin.ledger.txparse import hex_to_hash

    first = wallet.build_payment([(p2wpkh_script(PUB), 1_000)])
    wallet.reserved.clear()
    second = wallet.build_payment([(p2wpkh_script(PUB), 2_000)])
    built = build_block(
        hex_to_hash(chain.tip_hash()),
        chain.tip_height() + 1,
        chain.median_time_past() + 1000,
        [parse_tx(first), parse_tx(second)],
        0,
    )
    tip = chain.tip_hash()
    with pytest.raises(BlockRejected, match="bad-txns-inputs-missingorspent"):
        chain.submit_block(built.raw, built.txs)
    assert chain.tip_hash() == tip


def test_csv_locked_output(chain: KernelChain, wallet: Wallet) -> None:
    delay = 5
    ws = bytes(CScript([delay, OP_CHECKSEQUENCEVERIFY, OP_DROP, PUB, OP_CHECKSIG]))
    op = wallet.fund_output(p2wsh_script(ws), 20_000)
    chain.mine(1)
    confirmed_at = chain.tip_height()
    spend = spend_p2wsh(op, 20_000, ws, [], sequence=delay)
    chain.mine(delay - 2)  # next block is confirmed_at + delay - 1: one too early
    chain.broadcast(spend)
    with pytest.raises(TransactionRejected, match="non-BIP68-final"):
        chain.mine(1)
    assert chain.tip_height() == confirmed_at + delay - 2
    chain.mine(1)
    txid = chain.broadcast(spend)
    chain.mine(1)
    assert chain.get_tx_confirmations(txid) == 1
    assert chain.tip_height() == confirmed_at + delay


def test_csv_sequence_below_script_delay_fails_script(chain: KernelChain, wallet: Wallet) -> None:
    ws = bytes(CScript([10, OP_CHECKSEQUENCEVERIFY, OP_DROP, PUB, OP_CHECKSIG]))
    op = wallet.fund_output(p2wsh_script(ws), 20_000)
    chain.mine(12)
    chain.broadcast(spend_p2wsh(op, 20_000, ws, [], sequence=9))
    with pytest.raises(TransactionRejected, match="Locktime requirement not satisfied"):
        chain.mine(1)


def test_cltv_locked_output(chain: KernelChain, wallet: Wallet) -> None:
    lock = chain.tip_height() + 6
    ws = bytes(CScript([lock, OP_CHECKLOCKTIMEVERIFY, OP_DROP, PUB, OP_CHECKSIG]))
    op = wallet.fund_output(p2wsh_script(ws), 30_000)
    chain.mine(1)
    spend = spend_p2wsh(op, 30_000, ws, [], sequence=0xFFFFFFFE, locktime=lock)
    chain.mine(lock - 1 - chain.tip_height())  # next block has height == lock: not final
    chain.broadcast(spend)
    with pytest.raises(TransactionRejected, match="nonfinal"):
        chain.mine(1)
    assert chain.tip_height() == lock - 1
    # nLockTime below the script's lock: final, but the script itself fails
    early = spend_p2wsh(op, 30_000, ws, [], sequence=0xFFFFFFFE, locktime=lock - 2)
    chain.broadcast(early)
    with pytest.raises(TransactionRejected, match="Locktime requirement not satisfied"):
        chain.mine(1)
    chain.mine(1)  # tip == lock, next block lock + 1
    txid = chain.broadcast(spend)
    chain.mine(1)
    assert chain.get_tx_confirmations(txid) == 1


def test_watcher_learns_preimage_from_spend(chain: KernelChain, wallet: Wallet) -> None:
    preimage = b"\x42" * 32
    ws = bytes(
        CScript([OP_SHA256, hashlib.sha256(preimage).digest(), OP_EQUALVERIFY, PUB, OP_CHECKSIG])
    )
    op = wallet.fund_output(p2wsh_script(ws), 25_000)
    chain.mine(1)
    assert chain.find_spending_tx(op) is None
    chain.broadcast(spend_p2wsh(op, 25_000, ws, [b"\x00" * 32]))
    with pytest.raises(TransactionRejected, match="script-verify-flag-failed"):
        chain.mine(1)
    chain.broadcast(spend_p2wsh(op, 25_000, ws, [preimage]))
    chain.mine(1)
    raw = chain.find_spending_tx(op)
    assert raw is not None and preimage in raw


def test_reorg_unconfirms_tx(chain: KernelChain, wallet: Wallet) -> None:
    coin = wallet.spendable()[0].outpoint
    dropped = wallet.fund_output(p2wpkh_script(PUB), 10_000)
    chain.mine(1)
    kept = wallet.fund_output(p2wpkh_script(PUB), 11_000)
    chain.mine(1)
    assert chain.get_tx_confirmations(dropped.txid) == 2
    old_tip = chain.tip_height()
    dropped_raw = chain.get_raw_tx(dropped.txid)
    assert dropped_raw is not None
    chain.poll_events()
    fork = chain.reorg(depth=2, exclude=[dropped.txid])
    assert chain.tip_height() == old_tip + 1 and chain.tip_hash() == fork[-1]
    assert chain.get_tx_confirmations(dropped.txid) is None
    # `kept` (independent of `dropped`) went back into the fork's first block
    assert chain.get_tx_confirmations(kept.txid) == 3
    assert chain.get_utxo(dropped) is None
    assert chain.get_utxo(coin) is not None  # the wallet's coin is unspent again
    assert chain.find_spending_tx(coin) is None
    events = chain.poll_events()
    unconfirmed = {e.txid for e in events if e.kind is EventKind.TX_UNCONFIRMED}
    assert {dropped.txid, kept.txid} <= unconfirmed
    reconfirmed = {e.txid for e in events if e.kind is EventKind.TX_CONFIRMED}
    assert kept.txid in reconfirmed and dropped.txid not in reconfirmed
    assert [e.kind for e in events].count(EventKind.BLOCK_DISCONNECTED) == 2
    assert chain.queued() == []
    # the dropped tx is still valid on the new branch and can be mined again
    assert chain.broadcast(dropped_raw) == dropped.txid
    chain.mine(1)
    assert chain.get_tx_confirmations(dropped.txid) == 1


def test_reorg_keeps_other_txs(chain: KernelChain, wallet: Wallet) -> None:
    op = wallet.fund_output(p2wpkh_script(PUB), 10_000)
    chain.mine(1)
    chain.reorg(depth=1, replacement_blocks=3)
    assert chain.get_tx_confirmations(op.txid) == 3  # re-included in the fork's first block
    with pytest.raises(ValueError):
        chain.reorg(depth=1, replacement_blocks=1)


def test_advance_time_is_bounded(chain: KernelChain) -> None:
    chain.advance_time(3600)
    chain.mine(1)
    assert chain.tip_time() >= chain.median_time_past()
    with pytest.raises(LedgerError, match="2 h"):
        chain.advance_time(3600)


def test_reopen_datadir(tmp_path: Path) -> None:
    with KernelChain(tmp_path / "chain") as c:
        w = Wallet(c)
        w.fund(1)
        op = w.fund_output(p2wpkh_script(PUB), 7_000)
        c.mine(1)
        tip = c.tip_hash()
    with KernelChain(tmp_path / "chain") as c:
        assert c.tip_hash() == tip and c.tip_height() == 101
        assert c.get_utxo(op) == (7_000, p2wpkh_script(PUB), 101)
        c.mine(1)
        assert c.tip_height() == 102


def test_txparse_matches_python_bitcoinlib(chain: KernelChain, wallet: Wallet) -> None:
    from bitcoin.core import CTransaction, b2lx

    raw = wallet.build_payment([(p2wpkh_script(PUB), 5_000), (p2wsh_script(b"\x51"), 6_000)])
    ours = parse_tx(raw)
    theirs = CTransaction.deserialize(raw)
    assert ours.txid == b2lx(theirs.GetTxid()) and ours.wtxid == b2lx(theirs.GetHash())
    assert [(o.value, o.script_pubkey) for o in ours.outputs] == [
        (o.nValue, bytes(o.scriptPubKey)) for o in theirs.vout
    ]


def test_rejection_reasons_stay_right_after_the_log_buffer_is_trimmed(
    chain: KernelChain, wallet: Wallet
) -> None:
    """The kernel's log is process-wide and trimmed when long: a rejection must quote its
    own block's reason, not an older block's (regression: CI once reported a stale
    script failure for a double spend)."""
    from chenilles_bitcoin.ledger.kernel_chain import _KernelLog

    log = _KernelLog.get()
    # Leave the buffer one line short of a trim, so the block's own lines trigger one.
    while len(log.lines) != 999:
        log._on_log(
            "ConnectBlock " + "ab" * 32 + " failed, block-script-verify-flag-failed (stale)"
        )
    test_kernel_rejects_in_block_double_spend(chain, wallet)


def test_wallet_finds_its_coins_across_reorgs_and_reloads(
    chain: KernelChain, wallet: Wallet
) -> None:
    """The wallet keeps no coin list: a reorg that drops a payment to it, or a fresh Wallet
    on the same key (a restart), sees exactly the chain's UTXO set."""
    other = Wallet(chain, secret=KEY)
    assert other.balance() == 0
    op = wallet.fund_output(other.script_pubkey, 70_000)
    spent = parse_tx(chain.get_raw_tx(op.txid) or b"").inputs[0].prevout
    chain.mine(1)
    assert spent not in {c.outpoint for c in wallet.coins()}
    assert other.balance() == 70_000 and Wallet(chain, secret=KEY).balance() == 70_000
    chain.reorg(1, exclude=[op.txid])  # the payment's block is replaced without it
    assert other.balance() == 0 and Wallet(chain, secret=KEY).coins() == []
    assert spent in {c.outpoint for c in wallet.spendable()}  # back, and not reserved
    with pytest.raises(LedgerError, match="wallet has 0 sat spendable"):
        other.build_payment([(wallet.script_pubkey, 1_000)])


def test_account_keys_are_checked() -> None:
    from chenilles_bitcoin.accounts import parse_secret

    assert parse_secret(KEY.hex()) == KEY == parse_secret("0x" + KEY.hex()) == parse_secret(KEY)
    for bad in ("", "zz" * 32, KEY.hex()[:-2], "00" * 32, "ff" * 32, b"\x01" * 31):
        with pytest.raises(ValueError) as info:
            parse_secret(bad)
        assert KEY.hex() not in str(info.value)
    with pytest.raises(TypeError):
        parse_secret(123)  # type: ignore[arg-type]


def test_block_header_is_of_the_hashs_block_on_the_active_chain_only(chain: KernelChain) -> None:
    """What the backend's chain clock reads after a tip's hash: that block's height and
    time; a block reorganised away, or unknown, is a KeyError (the clock reads again)."""
    chain.mine(3)
    tip = chain.tip_hash()
    assert chain.block_header(tip) == (chain.tip_height(), chain.tip_time())
    assert chain.block_header(chain.block_hash(1))[0] == 1
    chain.reorg(1)
    with pytest.raises(KeyError):
        chain.block_header(tip)
    with pytest.raises(KeyError):
        chain.block_header("00" * 32)
    assert chain.block_header(chain.tip_hash())[0] == chain.tip_height()
