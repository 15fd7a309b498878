"""The backends' optional ``Wallet`` role on their real ledgers (py-evm, the kernel-validated
Bitcoin regtest chain, LiteSVM): decimals, the account's address, sending to an address,
Bitcoin's coins, and refusals that send nothing."""

from __future__ import annotations

import pytest

from chenilles_hub.backend import CoinWallet, LedgerError, Wallet


@pytest.mark.evm
def test_evm_sends_eth_and_tokens_and_knows_their_decimals() -> None:
    from chenilles_evm.backend import embedded_backend

    backend = embedded_backend()
    try:
        eth, token = backend.assets()
        assert isinstance(backend, Wallet) and not isinstance(backend, CoinWallet)
        assert backend.decimals(eth) == 18 and backend.decimals(token) == 18
        alice, bob = backend.create_account(), backend.create_account(fund=False)
        to = backend.address(bob)
        receipt = backend.send(alice, eth, to, 12_345)
        assert receipt.fee > 0 and backend.balance(bob, eth) == 12_345
        backend.send(alice, token, to, 777)
        assert backend.balance(bob, token) == 777
        before = backend.balance(alice, eth)
        with pytest.raises(LedgerError, match="not an EVM address"):
            backend.send(alice, eth, "0x1234", 1)
        assert backend.balance(alice, eth) == before
    finally:
        backend.close()


@pytest.mark.bitcoin
def test_bitcoin_sends_to_a_segwit_address_and_lists_its_coins() -> None:
    from chenilles_bitcoin.backend import embedded_backend

    backend = embedded_backend()
    try:
        (btc,) = backend.assets()
        assert isinstance(backend, Wallet) and isinstance(backend, CoinWallet)
        assert backend.decimals(btc) == 8
        alice, bob = backend.create_account(), backend.create_account(fund=False)
        to = backend.address(bob)
        assert to.startswith("bcrt1q")
        coins = backend.coins(alice)
        assert coins and any(c["spendable"] and c["coinbase"] for c in coins)
        held = backend.balance(alice, btc)
        receipt = backend.send(alice, btc, to, 150_000)
        assert receipt.fee > 0
        backend.mine(1)
        assert backend.balance(bob, btc) == 150_000
        ((coin,),) = [backend.coins(bob)]
        assert (coin["txid"], coin["value"]) == (receipt.txid, 150_000)
        assert backend.balance(alice, btc) == held - 150_000 - receipt.fee
        for address, reason in ((to.replace("bcrt", "bc"), "segwit address"), ("xyz", "segwit")):
            with pytest.raises(LedgerError, match=reason):
                backend.send(alice, btc, address, 1)
        with pytest.raises(LedgerError):
            backend.send(bob, btc, backend.address(alice), 150_001)  # more than it has
        assert backend.balance(bob, btc) == 150_000
    finally:
        close = getattr(backend.ledger, "close", None)
        if close is not None:
            close()


@pytest.mark.solana
def test_solana_sends_sol_and_tokens_and_reads_the_mints_decimals() -> None:
    from chenilles_solana.backend import embedded_backend

    backend = embedded_backend()
    sol, token = backend.assets()
    assert isinstance(backend, Wallet)
    assert backend.decimals(sol) == 9 and backend.decimals(token) == 6
    alice, bob = backend.create_account(), backend.create_account(fund=False)
    receipt = backend.send(alice, sol, backend.address(bob), 2_000_000)
    assert receipt.fee > 0 and backend.balance(bob, sol) == 2_000_000
    backend.send(alice, token, backend.address(bob), 55)  # creates bob's token account
    assert backend.balance(bob, token) == 55
    with pytest.raises(LedgerError, match="not a Solana address"):
        backend.send(alice, sol, "not-base58!", 1)
