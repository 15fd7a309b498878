"""The devnet server's methods over real HTTP, each answer parsed by solders' response types
(agave's own Rust structs, as solana-py parses them), values checked exactly.

One server for the module (50 ms slots).
"""

from __future__ import annotations

import base64
import json

import base58
import pytest
from chenilles_solana import program_client as pc
from chenilles_solana import spl_token as spl
from chenilles_solana.devnet import genesis
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.rpc.responses import (
    GetAccountInfoResp,
    GetBalanceResp,
    GetBlockHeightResp,
    GetBlockTimeResp,
    GetEpochInfoResp,
    GetFeeForMessageResp,
    GetHealthResp,
    GetLatestBlockhashResp,
    GetMinimumBalanceForRentExemptionResp,
    GetMultipleAccountsResp,
    GetSignaturesForAddressResp,
    GetSignatureStatusesResp,
    GetSlotResp,
    GetTokenAccountBalanceResp,
    GetTransactionResp,
    GetVersionResp,
    IsBlockhashValidResp,
    RequestAirdropResp,
    SendTransactionResp,
    SimulateTransactionResp,
)
from solders.system_program import TransferParams, transfer
from solders.sysvar import CLOCK
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionConfirmationStatus

from .devnet_harness import DevnetProc

# One worker per module under xdist, so the module's one server serves all its tests.
pytestmark = [pytest.mark.solana, pytest.mark.devnet, pytest.mark.xdist_group("solana-devnet-rpc")]

SOL = 1_000_000_000


@pytest.fixture(scope="module")
def dn(tmp_path_factory):
    proc = DevnetProc(tmp_path_factory.mktemp("devnet") / "data", slot_ms=50)
    yield proc
    assert proc.stop() == 0  # SIGTERM: a clean exit


def funded(dn: DevnetProc, lamports: int = 10 * SOL) -> Keypair:
    kp = Keypair()
    resp = RequestAirdropResp.from_json(dn.text("requestAirdrop", [str(kp.pubkey()), lamports]))
    assert resp.value is not None
    return kp


def blockhash(dn: DevnetProc) -> Hash:
    return GetLatestBlockhashResp.from_json(dn.text("getLatestBlockhash")).value.blockhash


def signed(dn: DevnetProc, ixs: list[Instruction], signers: list[Keypair]) -> VersionedTransaction:
    message = Message.new_with_blockhash(ixs, signers[0].pubkey(), blockhash(dn))
    return VersionedTransaction(message, signers)


def send(dn: DevnetProc, tx: VersionedTransaction, **config) -> str:
    wire = base64.b64encode(bytes(tx)).decode()
    resp = SendTransactionResp.from_json(
        dn.text("sendTransaction", [wire, {"encoding": "base64", **config}])
    )
    assert isinstance(resp, SendTransactionResp), resp
    return str(resp.value)


def pay(a: Keypair, b: Pubkey, lamports: int) -> Instruction:
    return transfer(TransferParams(from_pubkey=a.pubkey(), to_pubkey=b, lamports=lamports))


def test_ready_line_and_the_deployed_program(dn):
    ready = json.loads((dn.datadir / "ready.json").read_text())
    assert ready == dn.ready
    assert ready["ready"] is True and ready["url"].startswith("http://127.0.0.1:")
    assert ready["program_id"] == str(pc.DEFAULT_PROGRAM_ID) == str(genesis.PROGRAM_ID)
    program = GetAccountInfoResp.from_json(dn.text("getAccountInfo", [ready["program_id"]]))
    assert program.value is not None and program.value.executable
    mint = GetAccountInfoResp.from_json(dn.text("getAccountInfo", [ready["test_mint"]])).value
    assert mint is not None and mint.owner == spl.TOKEN_PROGRAM_ID and len(mint.data) == 82
    authority = Keypair.from_seed(bytes.fromhex(ready["test_mint_authority"]))
    assert bytes(mint.data)[4:36] == bytes(authority.pubkey())


def test_node_methods_parse_as_solana_types(dn):
    assert GetHealthResp.from_json(dn.text("getHealth")).value == "ok"
    assert GetVersionResp.from_json(dn.text("getVersion")).value.solana_core == "4.1.2"
    slot = GetSlotResp.from_json(dn.text("getSlot", [{"commitment": "processed"}])).value
    height = GetBlockHeightResp.from_json(dn.text("getBlockHeight")).value
    assert height >= slot
    info = GetEpochInfoResp.from_json(dn.text("getEpochInfo")).value
    assert info.absolute_slot >= height and info.slot_index < info.slots_in_epoch
    latest = GetLatestBlockhashResp.from_json(dn.text("getLatestBlockhash"))
    assert latest.context.slot + 150 == latest.value.last_valid_block_height
    valid = IsBlockhashValidResp.from_json(
        dn.text("isBlockhashValid", [str(latest.value.blockhash)])
    )
    assert valid.value is True
    assert dn.call("isBlockhashValid", [str(Hash.new_unique())])["value"] is False
    assert dn.call("getIdentity")["identity"]
    assert dn.call("getGenesisHash") == dn.call("getGenesisHash")


def test_slots_and_the_clock_sysvar_advance_together(dn):
    first = dn.call("getSlot")
    target = dn.wait_slot(first + 25)  # ~1.25 s at 50 ms
    clock_account = GetAccountInfoResp.from_json(dn.text("getAccountInfo", [str(CLOCK)])).value
    assert clock_account is not None
    from solders.clock import Clock

    clock = Clock.from_bytes(bytes(clock_account.data))
    assert clock.slot >= target
    block_time = GetBlockTimeResp.from_json(dn.text("getBlockTime", [clock.slot])).value
    assert block_time == clock.unix_timestamp
    earlier = dn.call("getBlockTime", [first])
    assert earlier <= clock.unix_timestamp
    # the chain's time is wall time (to the slot): within a couple of seconds of ours
    import time

    assert abs(clock.unix_timestamp - time.time()) < 3


def test_airdrop_balance_and_accounts(dn):
    kp = funded(dn, 3 * SOL)
    bal = GetBalanceResp.from_json(dn.text("getBalance", [str(kp.pubkey())]))
    assert bal.value == 3 * SOL
    assert GetBalanceResp.from_json(dn.text("getBalance", [str(Keypair().pubkey())])).value == 0
    acct = GetAccountInfoResp.from_json(
        dn.text("getAccountInfo", [str(kp.pubkey()), {"encoding": "base64"}])
    ).value
    assert acct is not None and acct.lamports == 3 * SOL and acct.data == b""
    none = GetAccountInfoResp.from_json(dn.text("getAccountInfo", [str(Keypair().pubkey())]))
    assert none.value is None
    many = GetMultipleAccountsResp.from_json(
        dn.text(
            "getMultipleAccounts",
            [[str(kp.pubkey()), str(Keypair().pubkey()), dn.ready["test_mint"]]],
        )
    ).value
    assert many[0].lamports == 3 * SOL and many[1] is None and len(many[2].data) == 82
    # base58 and a data slice (the mint's authority, as raw bytes)
    sliced = dn.call(
        "getAccountInfo",
        [dn.ready["test_mint"], {"encoding": "base58", "dataSlice": {"offset": 4, "length": 32}}],
    )["value"]
    assert sliced["data"][1] == "base58" and sliced["space"] == 82
    assert base58.b58decode(sliced["data"][0]) == bytes(genesis.TEST_MINT_AUTHORITY.pubkey())
    rent = GetMinimumBalanceForRentExemptionResp.from_json(
        dn.text("getMinimumBalanceForRentExemption", [165])
    ).value
    assert rent == 2_039_280  # Solana's rent for a token account


def test_transfer_lands_with_exact_meta_in_every_encoding(dn):
    alice, bob = funded(dn), Keypair()
    tx = signed(dn, [pay(alice, bob.pubkey(), SOL)], [alice])
    message_b64 = base64.b64encode(bytes(tx.message)).decode()
    fee = GetFeeForMessageResp.from_json(dn.text("getFeeForMessage", [message_b64])).value
    assert fee == 5000
    sig = send(dn, tx)
    assert sig == str(tx.signatures[0])
    status = GetSignatureStatusesResp.from_json(dn.text("getSignatureStatuses", [[sig]])).value[0]
    assert status is not None and status.err is None
    assert status.confirmation_status == TransactionConfirmationStatus.Finalized
    for encoding in ("json", "base64", "base58"):
        got = GetTransactionResp.from_json(
            dn.text("getTransaction", [sig, {"encoding": encoding}])
        ).value
        assert got is not None, encoding
        meta = got.transaction.meta
        assert meta.err is None and meta.fee == 5000
        assert meta.pre_balances == [10 * SOL, 0, 1]
        assert meta.post_balances == [10 * SOL - SOL - 5000, SOL, 1]
        assert meta.compute_units_consumed == 150
        assert meta.log_messages[0] == "Program 11111111111111111111111111111111 invoke [1]"
        assert got.block_time == dn.call("getBlockTime", [got.slot])
        assert got.transaction.version is None  # not asked for: not given
    raw = dn.call("getTransaction", [sig, {"encoding": "base64"}])
    assert base64.b64decode(raw["transaction"][0]) == bytes(tx)
    raw = dn.call("getTransaction", [sig, {"encoding": "base58"}])
    assert base58.b58decode(raw["transaction"][0]) == bytes(tx)
    raw = dn.call("getTransaction", [sig, "json"])  # the deprecated positional encoding
    assert raw["transaction"]["signatures"] == [sig]
    assert raw["transaction"]["message"]["accountKeys"][0] == str(alice.pubkey())
    assert "addressTableLookups" not in raw["transaction"]["message"]
    versioned = dn.call("getTransaction", [sig, {"maxSupportedTransactionVersion": 0}])
    assert versioned["version"] == "legacy"
    assert dn.call("getTransaction", [str(Keypair().sign_message(b"x"))]) is None
    with pytest.raises(AssertionError, match="commitment below"):
        dn.call("getTransaction", [sig, {"commitment": "processed"}])


def test_v0_transactions_need_the_client_to_say_so(dn):
    alice = funded(dn)
    message = MessageV0.try_compile(
        alice.pubkey(), [pay(alice, Keypair().pubkey(), SOL)], [], blockhash(dn)
    )
    tx = VersionedTransaction(message, [alice])
    sig = send(dn, tx)
    err = dn.error("getTransaction", [sig])
    assert err["code"] == -32015
    assert '"maxSupportedTransactionVersion": 0' in err["message"]
    got = dn.call("getTransaction", [sig, {"maxSupportedTransactionVersion": 0}])
    assert got["version"] == 0
    assert got["transaction"]["message"]["addressTableLookups"] == []
    parsed = GetTransactionResp.from_json(
        dn.text("getTransaction", [sig, {"maxSupportedTransactionVersion": 0}])
    ).value
    assert parsed.transaction.version == 0


def test_tokens_balances_in_meta_and_token_account_balance(dn):
    alice = funded(dn)
    mint, authority = Pubkey.from_string(dn.ready["test_mint"]), genesis.TEST_MINT_AUTHORITY
    ata = spl.associated_token_address(alice.pubkey(), mint)
    tx = signed(
        dn,
        [
            spl.create_ata_idempotent_ix(alice.pubkey(), alice.pubkey(), mint),
            spl.mint_to_ix(mint, ata, authority.pubkey(), 1_500_000),
        ],
        [alice, authority],
    )
    sig = send(dn, tx)
    bal = GetTokenAccountBalanceResp.from_json(dn.text("getTokenAccountBalance", [str(ata)]))
    assert bal.value.amount == "1500000" and bal.value.decimals == 6
    assert bal.value.ui_amount_string == "1.5"
    got = GetTransactionResp.from_json(dn.text("getTransaction", [sig])).value
    meta = got.transaction.meta
    assert meta.pre_token_balances == []
    (post,) = meta.post_token_balances
    keys = got.transaction.transaction.message.account_keys
    assert keys[post.account_index] == ata
    assert (post.mint, post.owner, post.ui_token_amount.amount) == (mint, alice.pubkey(), "1500000")
    assert meta.inner_instructions  # the ATA program's CPIs into System and Token
    assert all(
        ix.stack_height == 2 for inner in meta.inner_instructions for ix in inner.instructions
    )
    err = dn.error("getTokenAccountBalance", [str(alice.pubkey())])
    assert (err["code"], err["message"]) == (-32602, "Invalid param: not a Token account")


def test_signatures_for_address_newest_first_with_before_until_limit(dn):
    alice, bob = funded(dn), Keypair()
    sigs = [
        send(dn, signed(dn, [pay(alice, bob.pubkey(), SOL // 100 + i)], [alice])) for i in range(5)
    ]
    listed = GetSignaturesForAddressResp.from_json(
        dn.text("getSignaturesForAddress", [str(bob.pubkey())])
    ).value
    assert [str(s.signature) for s in listed] == sigs[::-1]
    assert all(s.err is None and s.block_time for s in listed)
    page = dn.call("getSignaturesForAddress", [str(bob.pubkey()), {"limit": 2}])
    assert [s["signature"] for s in page] == sigs[:2:-1][:2]
    page = dn.call("getSignaturesForAddress", [str(bob.pubkey()), {"before": sigs[3], "limit": 2}])
    assert [s["signature"] for s in page] == [sigs[2], sigs[1]]
    page = dn.call("getSignaturesForAddress", [str(bob.pubkey()), {"until": sigs[1]}])
    assert [s["signature"] for s in page] == [sigs[4], sigs[3], sigs[2]]
    # alice's airdrop carries the faucet's memo
    mine = dn.call("getSignaturesForAddress", [str(alice.pubkey())])
    assert mine[-1]["memo"].startswith("[") and "airdrop" in mine[-1]["memo"]
    assert (
        dn.error("getSignaturesForAddress", [str(bob.pubkey()), {"limit": 1001}])["code"] == -32602
    )


def test_simulate_transaction(dn):
    alice, bob = funded(dn), Keypair()
    tx = signed(dn, [pay(alice, bob.pubkey(), SOL)], [alice])
    wire = base64.b64encode(bytes(tx)).decode()
    sim = SimulateTransactionResp.from_json(
        dn.text(
            "simulateTransaction",
            [
                wire,
                {
                    "encoding": "base64",
                    "sigVerify": True,
                    "accounts": {"addresses": [str(bob.pubkey())], "encoding": "base64"},
                },
            ],
        )
    ).value
    assert sim.err is None and sim.units_consumed == 150
    assert sim.accounts[0].lamports == SOL  # what bob would hold
    assert dn.call("getBalance", [str(bob.pubkey())])["value"] == 0  # nothing kept
    # an unsigned transaction with a stale blockhash, simulated with a replacement
    unsigned = VersionedTransaction.populate(
        Message.new_with_blockhash([pay(alice, bob.pubkey(), SOL)], alice.pubkey(), Hash.default()),
        [alice.sign_message(b"not this message")],
    )
    raw = dn.call(
        "simulateTransaction",
        [
            base64.b64encode(bytes(unsigned)).decode(),
            {"encoding": "base64", "replaceRecentBlockhash": True},
        ],
    )["value"]
    assert raw["err"] is None and raw["replacementBlockhash"]["blockhash"]
    assert (
        dn.error(
            "simulateTransaction",
            [base64.b64encode(bytes(unsigned)).decode(), {"encoding": "base64", "sigVerify": True}],
        )["code"]
        == -32003
    )
    # failing: the error and the logs
    poor = Keypair()
    dn.call("requestAirdrop", [str(poor.pubkey()), SOL // 100])
    failing = signed(dn, [pay(poor, bob.pubkey(), SOL)], [poor])
    raw = dn.call(
        "simulateTransaction",
        [base58.b58encode(bytes(failing)).decode()],  # base58 default
    )["value"]
    assert raw["err"] == {"InstructionError": [0, {"Custom": 1}]}
    assert any("insufficient lamports" in line for line in raw["logs"])


def _reserialized(doc: dict, resp_type) -> dict:
    """``doc`` parsed by solders and serialized back (solders always writes id 0, and
    writes an error as its message and data: its type stands for the code)."""
    again = json.loads(resp_type.from_json(json.dumps(doc)).to_json())
    if "error" in doc:
        assert set(again) == {"message", "data"}
        return {"jsonrpc": "2.0", "error": {"code": doc["error"]["code"], **again}, "id": doc["id"]}
    again["id"] = doc["id"]
    return again


def test_every_answer_is_what_solders_would_write(dn):
    """Parsing is lenient (a missing optional field passes); writing back is not: each
    answer must come out of solders' (agave's) serializer unchanged, so no field is
    missing, misnamed, mistyped or extra. Known losses in solders' own types: an account's
    ``space`` and getVersion's ``feature-set`` (which this devnet leaves out)."""
    alice = funded(dn)
    mint = dn.ready["test_mint"]
    ata = spl.associated_token_address(alice.pubkey(), Pubkey.from_string(mint))
    sig = send(
        dn,
        signed(
            dn,
            [
                spl.create_ata_idempotent_ix(
                    alice.pubkey(), alice.pubkey(), Pubkey.from_string(mint)
                ),
                spl.mint_to_ix(
                    Pubkey.from_string(mint), ata, genesis.TEST_MINT_AUTHORITY.pubkey(), 7
                ),
            ],
            [alice, genesis.TEST_MINT_AUTHORITY],
        ),
    )
    failing = signed(dn, [pay(alice, Keypair().pubkey(), 100 * SOL)], [alice])
    failing_wire = base64.b64encode(bytes(failing)).decode()
    cases = [
        ("getSlot", None, GetSlotResp),
        ("getBlockHeight", None, GetBlockHeightResp),
        ("getLatestBlockhash", None, GetLatestBlockhashResp),
        ("getEpochInfo", None, GetEpochInfoResp),
        ("getHealth", None, GetHealthResp),
        ("getBalance", [str(alice.pubkey())], GetBalanceResp),
        ("getTokenAccountBalance", [str(ata)], GetTokenAccountBalanceResp),
        ("getSignatureStatuses", [[sig, str(failing.signatures[0])]], GetSignatureStatusesResp),
        ("getSignaturesForAddress", [str(alice.pubkey())], GetSignaturesForAddressResp),
        ("getTransaction", [sig, {"maxSupportedTransactionVersion": 0}], GetTransactionResp),
        ("getTransaction", [sig, {"encoding": "base64"}], GetTransactionResp),
        ("sendTransaction", [failing_wire, {"encoding": "base64"}], SendTransactionResp),
        ("simulateTransaction", [failing_wire, {"encoding": "base64"}], SimulateTransactionResp),
        (
            "getFeeForMessage",
            [base64.b64encode(bytes(failing.message)).decode()],
            GetFeeForMessageResp,
        ),
        ("getMinimumBalanceForRentExemption", [0], GetMinimumBalanceForRentExemptionResp),
        ("getBlockTime", [0], GetBlockTimeResp),
        ("isBlockhashValid", [str(Hash.default())], IsBlockhashValidResp),
    ]
    for method, params, resp_type in cases:
        doc = dn.raw(method, params)
        assert _reserialized(doc, resp_type) == doc, method
    for method, params, resp_type in [
        ("getAccountInfo", [str(ata)], GetAccountInfoResp),
        ("getMultipleAccounts", [[str(ata), str(Keypair().pubkey())]], GetMultipleAccountsResp),
    ]:
        doc = dn.raw(method, params)
        again = _reserialized(doc, resp_type)
        values = again["result"]["value"]
        for value in values if isinstance(values, list) else [values]:
            if value is not None:
                assert value.pop("space") is None  # solders' Account has no space
        for value in (
            doc["result"]["value"] if isinstance(values, list) else [doc["result"]["value"]]
        ):
            if value is not None:
                assert value.pop("space") == 165
        assert again == doc, method
    doc = dn.raw("getVersion")
    assert _reserialized(doc, GetVersionResp)["result"] == {**doc["result"], "feature-set": None}
