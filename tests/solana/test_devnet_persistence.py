"""The devnet's state across restarts of its process: kill -9 in the middle of a stream of
transactions loses none that a client was answered for; SIGTERM is a clean stop; one
server per datadir.
"""

from __future__ import annotations

import base64
import json
import threading
import time

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from .devnet_harness import DevnetProc

# Process-heavy: one xdist worker for the module.
pytestmark = [
    pytest.mark.solana,
    pytest.mark.devnet,
    pytest.mark.xdist_group("solana-devnet-persistence"),
]

SOL = 1_000_000_000


def send_transfer(dn: DevnetProc, payer: Keypair, to: Keypair, lamports: int) -> str:
    blockhash = Hash.from_string(dn.call("getLatestBlockhash")["value"]["blockhash"])
    message = Message.new_with_blockhash(
        [
            transfer(
                TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to.pubkey(), lamports=lamports)
            )
        ],
        payer.pubkey(),
        blockhash,
    )
    wire = base64.b64encode(bytes(VersionedTransaction(message, [payer]))).decode()
    return dn.call("sendTransaction", [wire, {"encoding": "base64"}])


def test_kill9_loses_nothing_confirmed(tmp_path):
    datadir = tmp_path / "data"
    dn = DevnetProc(datadir, slot_ms=20)
    alice, bob = Keypair(), Keypair()
    dn.call("requestAirdrop", [str(alice.pubkey()), 100 * SOL])
    confirmed: list[tuple[str, int]] = []

    def stream() -> None:
        i = 0
        while True:
            amount = SOL // 100 + i
            try:
                sig = send_transfer(dn, alice, bob, amount)
            except (OSError, AssertionError, json.JSONDecodeError):
                return  # the server died under us: this one was never answered
            confirmed.append((sig, amount))
            i += 1

    sender = threading.Thread(target=stream)
    sender.start()
    while len(confirmed) < 20:
        time.sleep(0.01)
    assert dn.kill9() == -9
    sender.join(10)
    assert (datadir / "ready.json").exists()  # a killed server leaves it behind

    again = DevnetProc(datadir, slot_ms=20)
    try:
        sigs = [s for s, _ in confirmed]
        statuses = again.call("getSignatureStatuses", [sigs])["value"]
        assert all(s is not None and s["err"] is None for s in statuses)
        received = again.call("getBalance", [str(bob.pubkey())])["value"]
        # bob holds at least what the client was told about; at most one more transfer
        # (executed and journaled, its answer lost with the process) beyond it
        told = sum(a for _, a in confirmed)
        landed = again.call("getSignaturesForAddress", [str(bob.pubkey())])
        assert len(landed) in (len(confirmed), len(confirmed) + 1)
        assert received >= told
        spent = 100 * SOL - again.call("getBalance", [str(alice.pubkey())])["value"]
        assert spent == received + 5000 * len(landed)  # lamports are conserved to the unit
        # the chain goes on from where it was: same history, more slots, new transactions
        assert again.call("getTransaction", [sigs[0]])["meta"]["err"] is None
        send_transfer(again, alice, bob, SOL)
        assert again.call("getBalance", [str(bob.pubkey())])["value"] == received + SOL
    finally:
        assert again.stop() == 0


def test_sigterm_lock_and_slot_time_change(tmp_path):
    datadir = tmp_path / "data"
    dn = DevnetProc(datadir, slot_ms=50)
    kp = Keypair()
    sig = dn.call("requestAirdrop", [str(kp.pubkey()), SOL])
    slot = dn.call("getTransaction", [sig])["slot"]
    block_time = dn.call("getBlockTime", [slot])
    # a second server on the same datadir is refused (it would fork the journal)
    with pytest.raises(RuntimeError, match="in use by another devnet server"):
        DevnetProc(datadir, slot_ms=50)
    assert dn.stop() == 0
    assert not (datadir / "ready.json").exists()  # a clean stop takes its ready file away
    slow = DevnetProc(datadir, slot_ms=400)
    try:
        assert slow.ready["slot_ms"] == 400
        assert slow.call("getBlockTime", [slot]) == block_time  # the past keeps its times
        assert slow.call("getBalance", [str(kp.pubkey())])["value"] == SOL
        assert slow.call("getSlot") >= slot
    finally:
        assert slow.stop() == 0
    # a damaged record (not a torn tail): the server refuses to start rather than forget it
    journal = datadir / "ledger.journal"
    data = bytearray(journal.read_bytes())
    first_line_end = data.index(b"\n")
    data[first_line_end + 20] ^= 0x01
    journal.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="record 2 is damaged"):
        DevnetProc(datadir, slot_ms=50)
