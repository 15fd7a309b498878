"""Differential: each app's Python rule and its Solidity contract give the same verdict on
random move sequences (honest moves and cheats), on a real EVM (eth-tester, py-evm).

The contract is the app plugin's own on-chain code, deployed as the EVM backend deploys
it, and called as the adjudicator calls it on a forced move (``validTransition``, at the
chain time the Python rule is given). A revert counts as a refusal. Accepting the same
``to`` state means the same outcome: every state an app accepts pays its own balances,
which the Python rule requires to be the app's outcome.
"""

from __future__ import annotations

import os
import random

import pytest
from chenilles_evm.adjudicator import load_artifact
from chenilles_evm.eip712 import Params
from chenilles_evm.ledgers import Ledger, ethtester_ledger
from chenilles_evm.mapping import caip2, to_state
from eth_tester.exceptions import TransactionFailed

from chenilles_hub import apps
from chenilles_hub.core import Asset

from . import cases

pytestmark = [pytest.mark.apps, pytest.mark.evm]

#: Sequences per app in the default run (about 350 cases each, a few seconds); the slow
#: variant runs twenty times as many (about 7,000 each).
SEQUENCES = 3
LONG = 20
slow = pytest.mark.skipif(
    not os.environ.get("CHENILLES_SLOW_TESTS"), reason="long variant: CHENILLES_SLOW_TESTS=1"
)


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return ethtester_ledger()


def _deploy(ledger: Ledger, name: str):  # type: ignore[no-untyped-def]
    w3 = ledger.w3
    abi = load_artifact("IApp")["abi"]
    code = apps.app(name).onchain_code("EVM")
    assert code
    tx = (
        w3.eth.contract(abi=abi, bytecode=code)
        .constructor()
        .transact({"from": ledger.accounts[0].address})
    )
    address = w3.eth.wait_for_transaction_receipt(tx)["contractAddress"]
    return w3.eth.contract(address=address, abi=abi)


def _verdicts(ledger: Ledger, name: str, sequence, seeds: range) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    contract = _deploy(ledger, name)
    chain = caip2(int(ledger.w3.eth.chain_id))
    assets = (Asset(chain, "native"), Asset(chain, "0x" + "ab" * 20))
    p = cases.params(name, chain, assets)
    rule = apps.app(name).rules()
    onchain = Params(("0x" + "11" * 20, "0x" + "22" * 20), 100, b"\x00" * 32, contract.address)
    now = ledger.now()
    tester = ledger.tester  # type: ignore[attr-defined]
    checked = accepted = 0
    for seed in seeds:
        for case in sequence(random.Random(seed), assets, now):
            expected = rule.valid_transition(p, case.before, case.after, case.mover, case.now)
            data = contract.functions.validTransition(
                onchain.to_abi(),
                to_state(p, case.before).to_abi(),
                to_state(p, case.after).to_abi(),
                case.mover,
            )._encode_transaction_data()
            # eth_call at the latest block: block.timestamp is `now` (web3's middleware
            # is skipped: it costs more than py-evm running the call)
            call = {"to": contract.address, "data": data, "from": ledger.accounts[0].address}
            try:
                out = tester.call(call, "latest")
                got = int(out, 16) == 1 if isinstance(out, str) else int.from_bytes(out) == 1
            except TransactionFailed:
                got = False
            assert got == expected, (seed, case.label, case)
            checked += 1
            accepted += expected
    return checked, accepted


def _ttt(rng: random.Random, assets, now):  # type: ignore[no-untyped-def]
    return cases.ttt_sequence(rng, assets, max_amount=2**250)


def _escrow(rng: random.Random, assets, now):  # type: ignore[no-untyped-def]
    return cases.escrow_sequence(rng, assets, max_amount=2**250, now=now)


def test_tictactoe_python_and_solidity_agree(ledger: Ledger) -> None:
    checked, accepted = _verdicts(ledger, "tictactoe", _ttt, range(SEQUENCES))
    assert checked > 250 and 0 < accepted < checked


def test_escrow_python_and_solidity_agree(ledger: Ledger) -> None:
    checked, accepted = _verdicts(ledger, "escrow", _escrow, range(SEQUENCES * 3))
    assert checked > 250 and 0 < accepted < checked


@pytest.mark.slow
@slow
@pytest.mark.parametrize("name", ["tictactoe", "escrow"])
def test_long_differential_run(ledger: Ledger, name: str) -> None:
    sequence = _ttt if name == "tictactoe" else _escrow
    per_app = SEQUENCES * LONG * (1 if name == "tictactoe" else 3)
    checked, _ = _verdicts(ledger, name, sequence, range(1000, 1000 + per_app))
    assert checked > 4000
