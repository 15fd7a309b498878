"""A stranger on the devnet's port: malformed requests, bad parameters, forged and invalid
transactions. Each gets Solana's error code and shape, and changes nothing (balances and
history are compared before and after). One server for the module.
"""

from __future__ import annotations

import base64
import json

import base58
import pytest
from chenilles_solana.ledger import FailedSend, RpcLedger
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.rpc.responses import SendTransactionResp
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from .devnet_harness import DevnetProc

# One worker per module under xdist, so the module's one server serves all its tests.
pytestmark = [
    pytest.mark.solana,
    pytest.mark.devnet,
    pytest.mark.xdist_group("solana-devnet-attacks"),
]

SOL = 1_000_000_000


@pytest.fixture(scope="module")
def dn(tmp_path_factory):
    proc = DevnetProc(tmp_path_factory.mktemp("devnet") / "data", slot_ms=50)
    yield proc
    assert proc.stop() == 0


@pytest.fixture(scope="module")
def alice(dn) -> Keypair:
    kp = Keypair()
    dn.call("requestAirdrop", [str(kp.pubkey()), 10 * SOL])
    return kp


def tx_to(dn: DevnetProc, payer: Keypair, lamports: int, blockhash: Hash | None = None):
    if blockhash is None:
        blockhash = Hash.from_string(dn.call("getLatestBlockhash")["value"]["blockhash"])
    message = Message.new_with_blockhash(
        [
            transfer(
                TransferParams(
                    from_pubkey=payer.pubkey(), to_pubkey=Keypair().pubkey(), lamports=lamports
                )
            )
        ],
        payer.pubkey(),
        blockhash,
    )
    return VersionedTransaction(message, [payer])


def b64(tx) -> str:
    return base64.b64encode(bytes(tx)).decode()


class Unchanged:
    """Everything a refused request must leave as it was."""

    def __init__(self, dn: DevnetProc, *keys: Keypair) -> None:
        self.dn, self.keys = dn, keys
        self.before = self.state()

    def state(self):
        return (
            [self.dn.call("getBalance", [str(k.pubkey())])["value"] for k in self.keys],
            self.dn.call("getTransactionCount"),
        )

    def check(self) -> None:
        assert self.state() == self.before


# --- the envelope ---------------------------------------------------------------------------


def test_malformed_json_is_a_parse_error(dn):
    for body in (
        b"{",
        b"not json",
        b'{"jsonrpc": "2.0", "id": 1, "method": "getSlot"',
        b"\xff\xfe",
        b"NaN",
    ):
        status, raw = dn.post(body)
        assert status == 200
        assert json.loads(raw) == {
            "jsonrpc": "2.0",
            "error": {"code": -32700, "message": "Parse error"},
            "id": None,
        }


def test_invalid_requests(dn):
    for request in (
        [],
        42,
        "getSlot",
        {"jsonrpc": "1.0", "id": 1, "method": "getSlot"},
        {"jsonrpc": "2.0", "id": 1},
        {"jsonrpc": "2.0", "id": 1, "method": 7},
        {"jsonrpc": "2.0", "id": [1], "method": "getSlot"},
        {"jsonrpc": "2.0", "id": True, "method": "getSlot"},
    ):
        status, raw = dn.post(json.dumps(request).encode())
        doc = json.loads(raw)
        assert status == 200 and doc["error"] == {"code": -32600, "message": "Invalid request"}
    # a batch answers each member in order; a notification (no id) gets no answer
    batch = [
        {"jsonrpc": "2.0", "id": "a", "method": "getHealth"},
        {"jsonrpc": "2.0", "method": "getHealth"},
        {"jsonrpc": "2.0", "id": 2, "method": "nope"},
        5,
    ]
    doc = json.loads(dn.post(json.dumps(batch).encode())[1])
    assert [d.get("id") for d in doc] == ["a", 2, None]
    assert doc[0]["result"] == "ok"
    assert doc[1]["error"]["code"] == -32601 and doc[2]["error"]["code"] == -32600
    status, raw = dn.post(b'{"jsonrpc": "2.0", "method": "getHealth"}')
    assert (status, raw) == (200, b"")


def test_unknown_method(dn):
    err = dn.error("getEverything", [])
    assert err == {"code": -32601, "message": "Method not found"}
    assert dn.error("sendtransaction", [])["code"] == -32601  # names are case-sensitive


def test_oversized_body_is_refused_before_parsing(dn, alice):
    unchanged = Unchanged(dn, alice)
    request = {"jsonrpc": "2.0", "id": 1, "method": "getSlot", "params": ["x" * 60_000]}
    status, _ = dn.post(json.dumps(request).encode())
    assert status == 413
    status, _ = dn.post(b"[" + b'{"jsonrpc":"2.0","id":1,"method":"getSlot"},' * 2000 + b"1]")
    assert status == 413
    unchanged.check()


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("getBalance", []),
        ("getBalance", ["not-a-key"]),
        ("getBalance", [123]),
        ("getBalance", [str(Pubkey.default()), {"commitment": "recent"}]),
        ("getBalance", [str(Pubkey.default()), "finalized"]),
        ("getBalance", [str(Pubkey.default()), {}, "extra"]),
        ("getBalance", {"pubkey": str(Pubkey.default())}),
        ("getSlot", [{"minContextSlot": -1}]),
        ("getSlot", [{"minContextSlot": 1.5}]),
        ("getBlockTime", ["1"]),
        ("getBlockTime", [2**64]),
        ("getMinimumBalanceForRentExemption", [-1]),
        ("getMinimumBalanceForRentExemption", [True]),
        ("getMinimumBalanceForRentExemption", [2**40]),
        ("getMultipleAccounts", [[str(Pubkey.default())] * 101]),
        ("getMultipleAccounts", [str(Pubkey.default())]),
        ("getAccountInfo", [str(Pubkey.default()), {"encoding": "base64+zstd"}]),
        ("getAccountInfo", [str(Pubkey.default()), {"dataSlice": {"offset": 1}}]),
        ("getSignatureStatuses", [["1" * 88] * 257]),
        ("getSignatureStatuses", [["abc"]]),
        ("getTransaction", ["abc"]),
        ("getTransaction", ["1" * 88, {"encoding": "jsonParsed"}]),
        ("getSignaturesForAddress", [str(Pubkey.default()), {"limit": 0}]),
        ("getSignaturesForAddress", [str(Pubkey.default()), {"before": "zzz"}]),
        ("isBlockhashValid", ["0OIl"]),
        ("requestAirdrop", [str(Pubkey.default()), 1.5]),
        ("requestAirdrop", [str(Pubkey.default()), -5]),
        ("requestAirdrop", [str(Pubkey.default()), "1000"]),
        ("requestAirdrop", [str(Pubkey.default())]),
        ("sendTransaction", []),
        ("sendTransaction", [17]),
        ("sendTransaction", ["AAAA", {"encoding": "json"}]),
        ("sendTransaction", ["0OIl", {"encoding": "base58"}]),
        ("sendTransaction", ["!!!!", {"encoding": "base64"}]),
        ("sendTransaction", ["AAAA", {"encoding": "base64"}]),
        ("sendTransaction", ["A" * 1645, {"encoding": "base64"}]),
        ("sendTransaction", ["1" * 1684]),
        (
            "sendTransaction",
            [base64.b64encode(bytes(1300)).decode()[:1644], {"encoding": "base64"}],
        ),
        ("sendTransaction", ["AAAA", {"encoding": "base64", "skipPreflight": "yes"}]),
        ("getFeeForMessage", ["AAAA"]),
    ],
)
def test_bad_params_are_32602_and_do_nothing(dn, alice, method, params):
    unchanged = Unchanged(dn, alice)
    err = dn.error(method, params)
    assert err["code"] == -32602, err
    assert err["message"]
    unchanged.check()


def test_airdrop_cap_and_zero(dn):
    key = str(Keypair().pubkey())
    err = dn.error("requestAirdrop", [key, 10**6 * SOL + 1])
    assert err["code"] == -32603 and "faucet" in err["message"]
    assert dn.error("requestAirdrop", [key, 0])["code"] == -32603
    assert dn.call("getBalance", [key])["value"] == 0


def test_min_context_slot_not_reached(dn):
    err = dn.error("getSlot", [{"minContextSlot": 2**40}])
    assert err["code"] == -32016
    assert err["message"] == "Minimum context slot has not been reached"
    assert err["data"]["contextSlot"] < 2**40


# --- transactions ---------------------------------------------------------------------------


def test_forged_signature_is_32003(dn, alice):
    unchanged = Unchanged(dn, alice)
    tx = tx_to(dn, alice, SOL)
    raw = bytearray(bytes(tx))
    raw[10] ^= 0x01  # inside the signature
    forged = base64.b64encode(bytes(raw)).decode()
    err = dn.error("sendTransaction", [forged, {"encoding": "base64"}])
    assert err == {"code": -32003, "message": "Transaction signature verification failure"}
    # a transaction signed by someone else for alice's funds
    mallory = Keypair()
    stolen = VersionedTransaction.populate(tx.message, [mallory.sign_message(bytes(tx.message))])
    assert dn.error("sendTransaction", [b64(stolen), {"encoding": "base64"}])["code"] == -32003
    # skipping preflight: the signature comes back, the leader drops it, nothing lands
    sig = dn.call("sendTransaction", [forged, {"encoding": "base64", "skipPreflight": True}])
    assert dn.call("getSignatureStatuses", [[sig]])["value"] == [None]
    unchanged.check()


def test_unknown_blockhash_is_a_preflight_failure(dn, alice):
    unchanged = Unchanged(dn, alice)
    tx = tx_to(dn, alice, SOL, Hash.new_unique())
    err = dn.error("sendTransaction", [b64(tx), {"encoding": "base64"}])
    assert err["code"] == -32002
    assert err["message"] == "Transaction simulation failed: Blockhash not found"
    assert err["data"]["err"] == "BlockhashNotFound" and err["data"]["logs"] == []
    resp = SendTransactionResp.from_json(json.dumps({"jsonrpc": "2.0", "error": err, "id": 1}))
    assert str(resp.data.err) == "TransactionErrorFieldless.BlockhashNotFound"  # solders reads it
    unchanged.check()


def test_insufficient_funds(dn, alice):
    # the transfer itself fails: -32002 with the program's logs
    unchanged = Unchanged(dn, alice)
    err = dn.error("sendTransaction", [b64(tx_to(dn, alice, 1000 * SOL)), {"encoding": "base64"}])
    assert err["code"] == -32002
    assert err["data"]["err"] == {"InstructionError": [0, {"Custom": 1}]}
    assert err["message"].endswith("Error processing Instruction 0: custom program error: 0x1")
    assert any("insufficient lamports" in line for line in err["data"]["logs"])
    assert err["data"]["unitsConsumed"] == 150
    unchanged.check()
    # an unfunded fee payer: AccountNotFound (no record of a prior credit)
    nobody = Keypair()
    err = dn.error("sendTransaction", [b64(tx_to(dn, nobody, 1)), {"encoding": "base64"}])
    assert err["code"] == -32002 and err["data"]["err"] == "AccountNotFound"
    unchanged.check()


def test_failed_execution_without_preflight_lands_and_pays_the_fee(dn, alice):
    before = dn.call("getBalance", [str(alice.pubkey())])["value"]
    tx = tx_to(dn, alice, 1000 * SOL)
    sig = dn.call("sendTransaction", [b64(tx), {"encoding": "base64", "skipPreflight": True}])
    (status,) = dn.call("getSignatureStatuses", [[sig]])["value"]
    assert status["err"] == {"InstructionError": [0, {"Custom": 1}]}
    assert status["status"] == {"Err": status["err"]}
    assert dn.call("getBalance", [str(alice.pubkey())])["value"] == before - 5000
    got = dn.call("getTransaction", [sig])
    assert got["meta"]["err"] == status["err"] and got["meta"]["fee"] == 5000
    assert got["meta"]["postBalances"][0] == before - 5000
    listed = dn.call("getSignaturesForAddress", [str(alice.pubkey()), {"limit": 1}])
    assert listed[0]["signature"] == sig and listed[0]["err"] == status["err"]


def test_the_rpc_ledger_books_the_fee_of_a_transaction_that_landed_and_failed(dn, alice):
    """``RpcLedger.send`` always runs the preflight, so on one server a transaction that
    passes it and then fails on chain only comes from a race (two watchers concluding in
    the same slot) that cannot be staged on demand: send one without preflight, then let
    the ledger read its outcome as ``send`` does after confirming. It must say what the
    failure cost (``FailedSend.sent.fee``), which the backend books in the LedgerError's
    receipt; it used to raise a bare LedgerError, and the wallet's books were 5000 short."""
    ledger = RpcLedger(dn.url, Pubkey.from_string(dn.ready["program_id"]))
    try:
        before = dn.call("getBalance", [str(alice.pubkey())])["value"]
        tx = tx_to(dn, alice, 1000 * SOL)
        sig = dn.call("sendTransaction", [b64(tx), {"encoding": "base64", "skipPreflight": True}])
        with pytest.raises(FailedSend) as failed:
            ledger._fetch("send", Signature.from_string(sig), len(bytes(tx)), [])
        assert failed.value.sent.fee == 5000 and failed.value.sent.signature == sig
        assert "0x1" in str(failed.value)
        assert dn.call("getBalance", [str(alice.pubkey())])["value"] == before - 5000
    finally:
        ledger.close()


def test_duplicate_transaction(dn, alice):
    tx = tx_to(dn, alice, SOL)
    sig = dn.call("sendTransaction", [base58.b58encode(bytes(tx)).decode()])  # base58 default
    unchanged = Unchanged(dn, alice)
    err = dn.error("sendTransaction", [b64(tx), {"encoding": "base64"}])
    assert err["code"] == -32002 and err["data"]["err"] == "AlreadyProcessed"
    # without preflight the leader drops it: same signature back, still one transaction
    assert (
        dn.call("sendTransaction", [b64(tx), {"encoding": "base64", "skipPreflight": True}]) == sig
    )
    unchanged.check()


def test_transaction_that_does_not_sanitize(dn, alice):
    unchanged = Unchanged(dn, alice)
    tx = tx_to(dn, alice, SOL)
    no_signature = VersionedTransaction.populate(tx.message, [])
    err = dn.error("sendTransaction", [b64(no_signature), {"encoding": "base64"}])
    assert err["code"] == -32602 and err["message"].startswith("invalid transaction")
    unchanged.check()
