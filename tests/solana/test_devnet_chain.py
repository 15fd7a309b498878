"""The devnet's parts in process, on a clock the test moves: slots and blockhash expiry,
the journal's durability rules, replay, and the keys a node configures.

The RPC methods here go through the same ``DevnetRpc`` the server dispatches to (only
HTTP is left out), so rules that need many slots (a blockhash expiring after 150) run in
milliseconds instead of a minute.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import base58
import pytest
from chenilles_solana import program_client as pc
from chenilles_solana.devnet import genesis
from chenilles_solana.devnet.chain import DevnetChain, DevnetError, Dropped, Landed
from chenilles_solana.devnet.clock import Blockhashes, Segment, SlotClock
from chenilles_solana.devnet.errors import RpcError, error_from_json, error_json, error_text
from chenilles_solana.devnet.journal import Journal, JournalCorrupt
from chenilles_solana.devnet.rpc import DevnetRpc
from chenilles_solana.devnet.tokens import ui_amount_string
from chenilles_solana.keys import keypair_from_secret
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionErrorFieldless

pytestmark = [pytest.mark.solana, pytest.mark.devnet]

SOL = 1_000_000_000
T0_MS = 1_750_000_000_000


class FakeTime:
    def __init__(self) -> None:
        self.ms = T0_MS

    def __call__(self) -> int:
        return self.ms


@pytest.fixture(scope="module")
def program() -> bytes:
    return pc.load_program()


def open_chain(path: Path, program: bytes, now: FakeTime, slot_ms: int = 400) -> DevnetChain:
    return DevnetChain(path, program, slot_ms, now_ms=now)


def transfer_tx(
    chain: DevnetChain, payer: Keypair, to: Keypair, lamports: int
) -> VersionedTransaction:
    blockhash, _ = chain.latest_blockhash()
    message = Message.new_with_blockhash(
        [
            transfer(
                TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to.pubkey(), lamports=lamports)
            )
        ],
        payer.pubkey(),
        blockhash,
    )
    return VersionedTransaction(message, [payer])


# --- the slot clock -------------------------------------------------------------------------


def test_slots_follow_wall_time_and_segments_keep_the_past():
    clock = SlotClock([Segment(0, T0_MS, 400)])
    assert clock.slot_at(T0_MS) == 0
    assert clock.slot_at(T0_MS + 399) == 0
    assert clock.slot_at(T0_MS + 4000) == 10
    assert clock.unix_time(10) == T0_MS // 1000 + 4
    # the wall clock stepping back never moves the chain back
    assert clock.slot_at(T0_MS) == 10
    # a restart with another slot time: past slots keep their times
    seg = clock.restart(T0_MS + 8000, 100)
    assert seg == Segment(21, T0_MS + 8000, 100)
    assert clock.unix_time(10) == T0_MS // 1000 + 4
    assert clock.slot_at(T0_MS + 9000) == 31
    assert clock.unix_time(31) == T0_MS // 1000 + 9
    assert clock.restart(T0_MS + 9000, 100) is None  # same slot time: no new segment
    with pytest.raises(ValueError):
        SlotClock([Segment(0, T0_MS, 0)])


def test_a_warp_moves_slots_and_unix_time_ahead_and_keeps_them():
    clock = SlotClock([Segment(0, T0_MS, 400)])
    assert clock.slot_at(T0_MS + 4000) == 10
    seg = clock.warp(T0_MS + 4000, 600)  # ten minutes: 1,500 slots of 400 ms
    assert seg == Segment(1510, T0_MS + 4000, 400, 600_000)
    assert clock.slot_at(T0_MS + 4000) == 1510
    assert clock.unix_time(1510) == T0_MS // 1000 + 4 + 600
    assert clock.unix_time(10) == T0_MS // 1000 + 4  # the past keeps its times
    assert clock.slot_at(T0_MS + 8000) == 1520  # and slots go on with wall time
    # a later restart with another slot time keeps the skew
    assert clock.restart(T0_MS + 8000, 100).skew_ms == 600_000
    with pytest.raises(ValueError):
        clock.warp(T0_MS + 8000, 0)


def test_advance_clock_over_rpc_moves_the_clock_sysvar_and_survives_a_restart(tmp_path, program):
    now = FakeTime()
    chain = open_chain(tmp_path / "dn", program, now)
    rpc = DevnetRpc(chain)
    before = rpc.call("getSlot", [])
    reply = rpc.call("devnetAdvanceClock", [3600])
    assert reply["slot"] == before + 9000 == rpc.call("getSlot", [])
    assert reply["unixTimestamp"] == T0_MS // 1000 + 3600
    assert chain.svm.get_clock().unix_timestamp == T0_MS // 1000 + 3600  # what programs see
    assert rpc.call("getBlockTime", [reply["slot"]]) == T0_MS // 1000 + 3600
    for bad in ([0], [-5], ["60"], [60, 1], [10 * 365 * 86400 + 1]):
        with pytest.raises(RpcError) as exc:
            rpc.call("devnetAdvanceClock", bad)
        assert exc.value.code == -32602
    assert rpc.call("getSlot", []) == reply["slot"]  # refused: nothing moved
    chain.close()
    again = open_chain(tmp_path / "dn", program, now)
    assert again.sync() == reply["slot"]
    assert again.clock.unix_time(reply["slot"]) == T0_MS // 1000 + 3600
    again.close()


def test_blockhash_ages_out_after_150_slots():
    hashes = Blockhashes(b"\x07" * 32)
    h = hashes.of(1000)
    assert hashes.of(1000) == h and hashes.of(1001) != h
    assert hashes.age(h, 1000) == 0
    assert hashes.age(h, 1150) == 150
    assert hashes.age(h, 1151) is None
    assert hashes.age(h, 999) is None  # a future blockhash is not valid yet
    assert hashes.age(Hash.new_unique(), 1000) is None
    assert Blockhashes(b"\x08" * 32).of(1000) != h  # another datadir, other hashes


# --- transactions through the RPC layer, with time under the test's control -----------------


def test_blockhash_expiry_and_duplicates(tmp_path, program):
    now = FakeTime()
    chain = open_chain(tmp_path / "dn", program, now)
    rpc = DevnetRpc(chain)
    alice, bob = Keypair(), Keypair()
    assert isinstance(chain.airdrop(alice.pubkey(), 10 * SOL), Landed)
    tx = transfer_tx(chain, alice, bob, SOL)
    wire = base64.b64encode(bytes(tx)).decode()
    now.ms += 151 * 400  # the blockhash is now 151 slots old
    with pytest.raises(RpcError) as exc:
        rpc.call("sendTransaction", [wire, {"encoding": "base64"}])
    assert exc.value.code == -32002
    assert exc.value.message == "Transaction simulation failed: Blockhash not found"
    assert exc.value.data["err"] == "BlockhashNotFound"
    # without preflight, the leader drops it: a signature comes back, it never lands
    sig = rpc.call("sendTransaction", [wire, {"encoding": "base64", "skipPreflight": True}])
    assert sig == str(tx.signatures[0])
    assert rpc.call("getSignatureStatuses", [[sig]])["value"] == [None]
    assert chain.account(bob.pubkey()) is None
    # 144 slots old: still accepted by a leader, but not by the preflight (forwarding room)
    tx = transfer_tx(chain, alice, bob, SOL)
    wire = base64.b64encode(bytes(tx)).decode()
    now.ms += 145 * 400
    with pytest.raises(RpcError, match="Blockhash not found"):
        rpc.call("sendTransaction", [wire, {"encoding": "base64"}])
    rpc.call("sendTransaction", [wire, {"encoding": "base64", "skipPreflight": True}])
    assert chain.account(bob.pubkey()).lamports == SOL
    # a transaction sent twice: AlreadyProcessed, nothing moves twice
    tx = transfer_tx(chain, alice, bob, SOL)
    wire = base64.b64encode(bytes(tx)).decode()
    rpc.call("sendTransaction", [wire, {"encoding": "base64"}])
    assert chain.account(bob.pubkey()).lamports == 2 * SOL
    with pytest.raises(RpcError) as exc:
        rpc.call("sendTransaction", [wire, {"encoding": "base64"}])
    assert exc.value.data["err"] == "AlreadyProcessed"
    assert exc.value.message.endswith("This transaction has already been processed")
    outcome = chain.execute(tx)
    assert isinstance(outcome, Dropped)
    assert outcome.err == TransactionErrorFieldless.AlreadyProcessed
    assert chain.account(bob.pubkey()).lamports == 2 * SOL


def test_clock_sysvar_moves_with_the_slots(tmp_path, program):
    now = FakeTime()
    chain = open_chain(tmp_path / "dn", program, now, slot_ms=250)
    rpc = DevnetRpc(chain)
    now.ms += 10_000
    slot = rpc.call("getSlot", [])
    assert slot == 40
    clock = chain.svm.get_clock()
    assert (clock.slot, clock.unix_timestamp) == (40, T0_MS // 1000 + 10)
    assert rpc.call("getBlockTime", [40]) == clock.unix_timestamp
    with pytest.raises(RpcError) as exc:
        rpc.call("getBlockTime", [41])
    assert (exc.value.code, exc.value.message) == (-32004, "Block not available for slot 41")
    info = rpc.call("getEpochInfo", [])
    assert info["absoluteSlot"] == info["blockHeight"] == 40
    assert info["epoch"] == clock.epoch


def test_replay_rebuilds_state_and_history(tmp_path, program):
    now = FakeTime()
    chain = open_chain(tmp_path / "dn", program, now)
    alice, bob = Keypair(), Keypair()
    chain.airdrop(alice.pubkey(), 10 * SOL)
    landed = chain.execute(transfer_tx(chain, alice, bob, 3 * SOL))
    assert isinstance(landed, Landed) and landed.err is None
    now.ms += 2000
    # an instruction that fails still lands: fee paid, error recorded
    failed = chain.execute(transfer_tx(chain, bob, alice, 50 * SOL))
    assert isinstance(failed, Landed)
    assert failed.err == {"InstructionError": [0, {"Custom": 1}]}
    balances = {k: chain.account(k.pubkey()).lamports for k in (alice, bob)}
    assert balances[bob] == 3 * SOL - 5000
    chain.close()
    now.ms += 60_000
    again = open_chain(tmp_path / "dn", program, now)
    assert {k: again.account(k.pubkey()).lamports for k in (alice, bob)} == balances
    assert [t.signature for t in again.history] == [t.signature for t in chain.history]
    assert again.landed(failed.signature).meta == failed.meta
    assert again.sync() == 150 + 5  # 62 s at 400 ms
    # the faucet's balance came back too (it is journaled like any account)
    assert again.account(genesis.FAUCET.pubkey()) == chain.account(genesis.FAUCET.pubkey())
    again.close()


def test_another_program_build_is_refused(tmp_path, program):
    now = FakeTime()
    open_chain(tmp_path / "dn", program, now).close()
    with pytest.raises(DevnetError, match="another build of the channel program"):
        open_chain(tmp_path / "dn", program + b"\x00", now)


def test_fee_for_message_is_the_runtime_fee(tmp_path, program):
    from solders.compute_budget import set_compute_unit_price

    now = FakeTime()
    chain = open_chain(tmp_path / "dn", program, now)
    rpc = DevnetRpc(chain)
    alice, bob = Keypair(), Keypair()
    chain.airdrop(alice.pubkey(), 10 * SOL)
    blockhash, _ = chain.latest_blockhash()
    message = Message.new_with_blockhash(
        [
            set_compute_unit_price(5_000_000),
            transfer(
                TransferParams(from_pubkey=alice.pubkey(), to_pubkey=bob.pubkey(), lamports=SOL)
            ),
        ],
        alice.pubkey(),
        blockhash,
    )
    quoted = rpc.call("getFeeForMessage", [base64.b64encode(bytes(message)).decode()])["value"]
    landed = chain.execute(VersionedTransaction(message, [alice]))
    assert isinstance(landed, Landed)
    assert quoted == landed.meta["fee"] > 5000  # the priority fee is in both
    assert landed.meta["preBalances"][0] - landed.meta["postBalances"][0] == SOL + quoted
    now.ms += 200 * 400
    assert (
        rpc.call("getFeeForMessage", [base64.b64encode(bytes(message)).decode()])["value"] is None
    )


# --- the journal ----------------------------------------------------------------------------


def test_journal_cuts_a_torn_tail_but_refuses_corruption(tmp_path):
    path = tmp_path / "j"
    j = Journal(path)
    j.append({"n": 1})
    j.append({"n": 2})
    j.close()
    whole = path.read_bytes()
    path.write_bytes(whole + whole.splitlines(keepends=True)[1][:15])  # crash mid-append
    j = Journal(path)
    assert [r["n"] for r in j.records()] == [1, 2]
    assert path.read_bytes() == whole  # the torn bytes are gone
    j.append({"n": 3})
    j.close()
    assert [r["n"] for r in Journal(path).records()] == [1, 2, 3]
    # a flipped byte inside an acknowledged record is corruption, not a torn tail
    data = bytearray(path.read_bytes())
    data[data.index(b'"n":2') + 4] = ord("7")
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt, match="record 2"):
        list(Journal(path).records())


# --- errors in Solana's JSON ----------------------------------------------------------------


def test_errors_round_trip_through_solders():
    err = error_from_json({"InstructionError": [2, {"Custom": 16}]})
    assert error_json(err) == {"InstructionError": [2, {"Custom": 16}]}
    assert (
        error_text(error_json(err)) == "Error processing Instruction 2: custom program error: 0x10"
    )
    assert (
        error_json(TransactionErrorFieldless.InsufficientFundsForFee) == "InsufficientFundsForFee"
    )
    assert error_text("InsufficientFundsForFee") == "Insufficient funds for fee"
    assert error_text({"InstructionError": [0, "InvalidArgument"]}).endswith(
        "invalid program argument"
    )
    assert error_text({"InsufficientFundsForRent": {"account_index": 1}}) == (
        "Transaction results in an account (1) with insufficient funds for rent"
    )


def test_ui_amounts_are_exact_strings():
    assert ui_amount_string(1_500_000, 6) == "1.5"
    assert ui_amount_string(1, 6) == "0.000001"
    assert ui_amount_string(0, 6) == "0"
    assert ui_amount_string(10**12, 6) == "1000000"
    assert ui_amount_string(2**64 - 1, 9) == "18446744073.709551615"
    assert ui_amount_string(42, 0) == "42"


# --- configured keys ------------------------------------------------------------------------


def test_keys_in_every_form():
    kp = Keypair()
    seed, full = bytes(kp)[:32], bytes(kp)
    forms = [
        seed,
        full,
        seed.hex(),
        "0x" + seed.hex(),
        full.hex().upper(),
        base58.b58encode(seed).decode(),
        base58.b58encode(full).decode(),
        str(kp),  # solders prints the base58 keypair
        json.dumps(list(full)),
        f"  {seed.hex()}\n",
    ]
    for form in forms:
        assert keypair_from_secret(form).pubkey() == kp.pubkey(), form


def test_bad_keys_are_refused_without_echoing_them():
    kp = Keypair()
    secret = bytes(kp)[:32].hex()
    bad = [
        secret[:-2],  # 31 bytes
        bytes(33),
        bytes(kp)[:32] + bytes(Keypair().pubkey()),  # public half of another key
        "0O" + secret[2:],  # not hex (O), not base58 (0)
        "[1, 2, 300]",
        "[",
    ]
    for key in bad:
        with pytest.raises(ValueError) as exc:
            keypair_from_secret(key)
        assert secret not in str(exc.value)
    with pytest.raises(TypeError):
        keypair_from_secret(12345)  # type: ignore[arg-type]


def test_devnet_command_is_the_module_with_its_options():
    from chenilles_solana.plugin import SolanaBackendFactory

    argv = SolanaBackendFactory().devnet_command("/d", "127.0.0.1", 8899, 0.4)
    assert argv[1:] == [
        "-m",
        "chenilles_solana.devnet",
        "--datadir",
        "/d",
        "--host",
        "127.0.0.1",
        "--port",
        "8899",
        "--slot-ms",
        "400",
    ]
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError):
            SolanaBackendFactory().devnet_command("/d", "127.0.0.1", 8899, bad)


def test_a_journal_that_cannot_be_written_stops_the_server(tmp_path, program, monkeypatch):
    """LiteSVM already executed the transaction; the disk did not take it. Nothing may be
    answered from that state: the request fails, and so does every later one, while the
    server stops."""
    from chenilles_solana.devnet.server import JsonRpcHandler

    now = FakeTime()
    chain = open_chain(tmp_path / "dn", program, now)
    stopped = []
    handler = JsonRpcHandler(DevnetRpc(chain), lambda: stopped.append(True))
    alice = Keypair()

    def disk_full(record):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(chain.journal, "append", disk_full)
    request = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "requestAirdrop",
        "params": [str(alice.pubkey()), SOL],
    }
    response = handler.one(request)
    assert response == {
        "jsonrpc": "2.0",
        "error": {"code": -32603, "message": "Internal error"},
        "id": 1,
    }
    assert stopped == [True]
    later = handler.one(
        {"jsonrpc": "2.0", "id": 2, "method": "getBalance", "params": [str(alice.pubkey())]}
    )
    assert later["error"]["code"] == -32603
