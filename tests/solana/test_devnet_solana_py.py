"""solana-py (a third-party client, pinned in constraints.txt) against the devnet server:
its requests as it sends them, its parsers (solders) on our answers, its confirmation loop.
"""

from __future__ import annotations

import asyncio

import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed, Finalized, Processed
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.keypair import Keypair
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.rpc.errors import SendTransactionPreflightFailureMessage
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionConfirmationStatus

from .devnet_harness import DevnetProc

# One worker per module under xdist, so the module's one server serves all its tests.
pytestmark = [
    pytest.mark.solana,
    pytest.mark.devnet,
    pytest.mark.xdist_group("solana-devnet-solana_py"),
]

SOL = 1_000_000_000


@pytest.fixture(scope="module")
def dn(tmp_path_factory):
    proc = DevnetProc(tmp_path_factory.mktemp("devnet") / "data", slot_ms=50)
    yield proc
    assert proc.stop() == 0


def run(dn: DevnetProc, scenario) -> None:
    async def main() -> None:
        async with AsyncClient(dn.url, commitment=Confirmed) as client:
            await scenario(client)

    asyncio.run(main())


def test_airdrop_transfer_and_reads(dn):
    alice, bob = Keypair(), Keypair()

    async def scenario(client: AsyncClient) -> None:
        assert await client.is_connected()
        sig = (await client.request_airdrop(alice.pubkey(), 5 * SOL)).value
        latest = (await client.get_latest_blockhash()).value
        confirmed = await client.confirm_transaction(
            sig,
            Confirmed,
            sleep_seconds=0.05,
            last_valid_block_height=latest.last_valid_block_height,
        )
        assert confirmed.value[0].confirmation_status == TransactionConfirmationStatus.Finalized
        assert (await client.get_balance(alice.pubkey())).value == 5 * SOL

        rent = (await client.get_minimum_balance_for_rent_exemption(0)).value
        assert rent == 890_880
        tx = VersionedTransaction(
            Message.new_with_blockhash(
                [
                    transfer(
                        TransferParams(
                            from_pubkey=alice.pubkey(), to_pubkey=bob.pubkey(), lamports=SOL
                        )
                    )
                ],
                alice.pubkey(),
                latest.blockhash,
            ),
            [alice],
        )
        fee = (await client.get_fee_for_message(tx.message)).value
        assert fee == 5000
        sent = await client.send_transaction(
            tx, TxOpts(skip_confirmation=False, preflight_commitment=Processed)
        )
        assert sent.value == tx.signatures[0]

        statuses = (
            await client.get_signature_statuses([sent.value, Keypair().sign_message(b"?")])
        ).value
        assert statuses[0] is not None and statuses[0].err is None and statuses[1] is None
        got = (await client.get_transaction(sent.value, commitment=Finalized)).value
        assert got is not None
        meta = got.transaction.meta
        assert meta.fee == fee and meta.err is None
        assert meta.pre_balances[:2] == [5 * SOL, 0]
        assert meta.post_balances[:2] == [4 * SOL - fee, SOL]
        as_b64 = (await client.get_transaction(sent.value, encoding="base64")).value
        assert bytes(as_b64.transaction.transaction) == bytes(tx)

        info = (await client.get_account_info(bob.pubkey())).value
        assert info is not None and info.lamports == SOL and info.owner == Pubkey.default()
        assert (await client.get_account_info(Keypair().pubkey())).value is None
        many = (await client.get_multiple_accounts([alice.pubkey(), bob.pubkey()])).value
        assert [a.lamports for a in many] == [4 * SOL - fee, SOL]
        sigs = (await client.get_signatures_for_address(bob.pubkey())).value
        assert [s.signature for s in sigs] == [sent.value]
        assert (await client.get_epoch_info()).value.absolute_slot >= got.slot
        assert (await client.get_block_time(got.slot)).value == got.block_time
        assert (await client.get_transaction_count()).value >= 2
        assert (await client.get_version()).value.solana_core

    run(dn, scenario)


def test_simulate_and_preflight_failure_as_solana_py_sees_them(dn):
    alice = Keypair()

    async def scenario(client: AsyncClient) -> None:
        sig = (await client.request_airdrop(alice.pubkey(), SOL)).value
        await client.confirm_transaction(sig, Confirmed, sleep_seconds=0.05)
        blockhash = (await client.get_latest_blockhash()).value.blockhash
        message = MessageV0.try_compile(
            alice.pubkey(),
            [
                transfer(
                    TransferParams(
                        from_pubkey=alice.pubkey(), to_pubkey=Keypair().pubkey(), lamports=2 * SOL
                    )
                )
            ],
            [],
            blockhash,
        )
        tx = VersionedTransaction(message, [alice])
        sim = (await client.simulate_transaction(tx, sig_verify=True)).value
        assert sim.err is not None and any("insufficient lamports" in x for x in sim.logs)
        with pytest.raises(RPCException) as exc:
            await client.send_transaction(tx)
        failure = exc.value.args[0]
        assert isinstance(failure, SendTransactionPreflightFailureMessage)
        assert failure.data.err == sim.err
        assert failure.data.logs == sim.logs
        assert (await client.get_balance(alice.pubkey())).value == SOL  # nothing charged

    run(dn, scenario)
