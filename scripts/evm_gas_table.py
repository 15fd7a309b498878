#!/usr/bin/env python3
"""Gas used by each adjudicator operation, on eth-tester (py-evm) and anvil.

    PYTHONPATH=backends/evm .venv/bin/python scripts/evm_gas_table.py [--ledger ethtester|anvil]

Scenarios: a 2-party channel with one asset (ETH or ERC-20), states with no HTLC
unless named. Anchors (published figures of other systems, for scale only):
Nitro ETH fund 46.5k, challenge 113k, checkpoint 74k, cooperative exit 112k,
non-cooperative exit 195k total; Raiden deposit 57k, close 123k, settle 116k.
"""

from __future__ import annotations

import argparse
import hashlib
import secrets

from chenilles_evm.adjudicator import AdjudicatorClient, Erc20, Params, State, deploy_contract
from chenilles_evm.eip712 import ETH, Htlc
from chenilles_evm.escrow_app import LOCKED, Escrow, release
from chenilles_evm.ledgers import Ledger, make_ledger

OPS = [
    "deploy Adjudicator",
    "deposit ETH (first)",
    "deposit ETH (top-up)",
    "deposit ERC-20 (first)",
    "concludeCooperative",
    "withdraw ETH",
    "withdraw ERC-20",
    "register",
    "refute (register newer)",
    "conclude",
    "register (1 HTLC)",
    "revealPreimage",
    "conclude (1 HTLC)",
    "progress (escrow app)",
    "= cooperative exit (close + 2 withdraw)",
    "= non-coop exit (reg + concl + 2 wd)",
]

ANCHORS = {
    "deposit ETH (first)": "Nitro fund 46.5k; Raiden deposit 57k",
    "register": "Nitro challenge 113k; Raiden close 123k",
    "refute (register newer)": "Nitro checkpoint 74k",
    "conclude": "Raiden settle 116k",
    "= cooperative exit (close + 2 withdraw)": "Nitro 112k",
    "= non-coop exit (reg + concl + 2 wd)": "Nitro 195k",
}


def measure(ledger: Ledger) -> dict[str, int]:
    """Run every operation once on a fresh deployment; return gas used per operation."""
    w3 = ledger.w3
    a, b, c = ledger.accounts[0], ledger.accounts[1], ledger.accounts[2]
    g: dict[str, int] = {}
    adj = AdjudicatorClient.deploy(w3, c.address)
    receipt = w3.eth.get_transaction_receipt(w3.eth.get_block("latest")["transactions"][0])
    g["deploy Adjudicator"] = int(receipt["gasUsed"])
    token = Erc20.deploy_test_token(w3, c.address)

    def params(app: str = ETH) -> Params:
        return Params((a.address, b.address), 100, secrets.token_bytes(32), app)

    def sign2(s: State) -> list[bytes]:
        return [adj.sign(s, a.key), adj.sign(s, b.key)]

    # cooperative, ETH
    p = params()
    cid = adj.channel_id(p)
    g["deposit ETH (first)"] = adj.deposit(p, 0, ETH, 10**18, a.address).gas_used
    g["deposit ETH (top-up)"] = adj.deposit(p, 1, ETH, 10**18, b.address).gas_used
    s = State(cid, 10, (ETH,), ((7 * 10**17, 13 * 10**17),), is_final=True)
    g["concludeCooperative"] = adj.conclude_cooperative(p, s, sign2(s), a.address).gas_used
    g["withdraw ETH"] = adj.withdraw(p, 0, ETH, a.address, a.address).gas_used
    wd_b = adj.withdraw(p, 1, ETH, b.address, b.address).gas_used
    g["= cooperative exit (close + 2 withdraw)"] = (
        g["concludeCooperative"] + g["withdraw ETH"] + wd_b
    )

    # ERC-20 funding and withdrawal
    p = params()
    cid = adj.channel_id(p)
    token.mint(a.address, 1000, a.address)
    token.approve(adj.address, 1000, a.address)
    g["deposit ERC-20 (first)"] = adj.deposit(p, 0, token.address, 1000, a.address).gas_used
    s = State(cid, 1, (token.address,), ((400, 600),), is_final=True)
    adj.conclude_cooperative(p, s, sign2(s), a.address)
    g["withdraw ERC-20"] = adj.withdraw(p, 1, token.address, b.address, b.address).gas_used

    # dispute, ETH
    p = params()
    cid = adj.channel_id(p)
    adj.deposit(p, 0, ETH, 10**18, a.address)
    adj.deposit(p, 1, ETH, 10**18, b.address)
    old = State(cid, 3, (ETH,), ((15 * 10**17, 5 * 10**17),))
    new = State(cid, 4, (ETH,), ((5 * 10**17, 15 * 10**17),))
    g["register"] = adj.register(p, old, sign2(old), a.address).gas_used
    r = adj.refute(p, new, sign2(new), b.address)
    g["refute (register newer)"] = r.gas_used
    ledger.time_travel(r.event("Registered").args["timeout"])
    g["conclude"] = adj.conclude(p, new, b.address).gas_used
    w0 = adj.withdraw(p, 0, ETH, a.address, a.address).gas_used
    w1 = adj.withdraw(p, 1, ETH, b.address, b.address).gas_used
    g["= non-coop exit (reg + concl + 2 wd)"] = g["register"] + g["conclude"] + w0 + w1

    # dispute with one HTLC
    p = params()
    cid = adj.channel_id(p)
    adj.deposit(p, 0, ETH, 10**18, a.address)
    pre = secrets.token_bytes(32)
    h = Htlc(1, 0, ETH, 10**17, hashlib.sha256(pre).digest(), ledger.now() + 10_000)
    s = State(cid, 7, (ETH,), ((9 * 10**17, 0),), (h,))
    r = adj.register(p, s, sign2(s), b.address)
    g["register (1 HTLC)"] = r.gas_used
    g["revealPreimage"] = adj.reveal_preimage(pre, b.address).gas_used
    ledger.time_travel(r.event("Registered").args["timeout"])
    g["conclude (1 HTLC)"] = adj.conclude(p, s, b.address).gas_used

    # app forced move
    app = deploy_contract(w3, "EscrowApp", sender=c.address)
    p = params(app.address)
    cid = adj.channel_id(p)
    adj.deposit(p, 0, ETH, 100, a.address)
    esc = Escrow(LOCKED, 0, ledger.now() + 10_000, 40)
    s1 = State(cid, 1, (ETH,), ((100, 0),), (), esc.encode())
    r = adj.register(p, s1, sign2(s1), a.address)
    ledger.time_travel(r.event("Registered").args["timeout"])
    s2 = release(s1, esc)
    g["progress (escrow app)"] = adj.progress(p, s1, s2, 0, adj.sign(s2, a.key), a.address).gas_used
    return g


def format_table(results: dict[str, dict[str, int]]) -> str:
    kinds = list(results)
    head = f"| {'operation':<40} | " + " | ".join(f"{k:>9}" for k in kinds) + " | anchor |"
    sep = "|" + "-" * 42 + "|" + "|".join("-" * 11 for _ in kinds) + "|--------|"
    rows = [head, sep]
    for op in OPS:
        vals = " | ".join(f"{results[k].get(op, 0):>9,}" for k in kinds)
        rows.append(f"| {op:<40} | {vals} | {ANCHORS.get(op, '')} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ledger", choices=["ethtester", "anvil"], action="append")
    args = ap.parse_args()
    results = {}
    for kind in args.ledger or ["ethtester", "anvil"]:
        with make_ledger(kind) as ledger:
            results[kind] = measure(ledger)
    print(format_table(results))


if __name__ == "__main__":
    main()
