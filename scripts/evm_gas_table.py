#!/usr/bin/env python3
"""Gas used by each adjudicator operation, on eth-tester (py-evm) and anvil.

    PYTHONPATH=backends/evm .venv/bin/python scripts/evm_gas_table.py [--ledger ethtester|anvil]

Scenarios: a 2-party channel with one asset (ETH or ERC-20), states with no HTLC
unless named. A conclusion (cooperative or not) pays both participants in its own
transaction, so an exit is the close alone, or register + conclude. `withdraw` only
pulls a payout the conclusion could not send (credited): measured with a participant
whose receiver rejects it (ETH: an EIP-7702 delegated account, so the anvil run uses
`--hardfork prague`, as py-evm already does; ERC-20: a token that blocks the receiver).
Anchors (published figures of other systems, for scale only): Nitro ETH fund 46.5k,
challenge 113k, checkpoint 74k, cooperative exit 112k, non-cooperative exit 195k
total; Raiden deposit 57k, close 123k, settle 116k.
"""

from __future__ import annotations

import argparse
import hashlib
import secrets

from chenilles_evm.adjudicator import (
    AdjudicatorClient,
    ContractReverted,
    Erc20,
    Params,
    State,
    delegate_code,
    deploy_contract,
)
from chenilles_evm.eip712 import ETH, Htlc
from chenilles_evm.escrow_app import LOCKED, Escrow, release
from chenilles_evm.ledgers import Ledger, anvil_ledger, make_ledger

COOPERATIVE_EXIT = "= cooperative exit (close, pays both)"
NONCOOPERATIVE_EXIT = "= non-coop exit (reg + concl, pays both)"

OPS = [
    "deploy Adjudicator",
    "deposit ETH (first)",
    "deposit ETH (top-up)",
    "deposit ERC-20 (first)",
    "concludeCooperative",
    "concludeCooperative ERC-20",
    "withdraw ETH (credited payout)",
    "withdraw ERC-20 (credited payout)",
    "register",
    "refute (register newer)",
    "conclude",
    "register (1 HTLC)",
    "revealPreimage",
    "conclude (1 HTLC)",
    "register (ERC-20)",
    "conclude (ERC-20)",
    "progress (escrow app)",
    COOPERATIVE_EXIT,
    NONCOOPERATIVE_EXIT,
]

ANCHORS = {
    "deposit ETH (first)": "Nitro fund 46.5k; Raiden deposit 57k",
    "register": "Nitro challenge 113k; Raiden close 123k",
    "refute (register newer)": "Nitro checkpoint 74k",
    "conclude": "Raiden settle 116k",
    COOPERATIVE_EXIT: "Nitro 112k",
    NONCOOPERATIVE_EXIT: "Nitro 195k",
}

#: ``TestWallet`` modes (contracts/evm/TestWallet.sol)
ACCEPT, REJECT = 0, 1


def measure(ledger: Ledger) -> dict[str, int]:
    """Run every operation once on a fresh deployment; return gas used per operation.

    ``withdraw ETH (credited payout)`` needs EIP-7702 (Prague): left out on an older
    ledger."""
    w3 = ledger.w3
    a, b, c = ledger.accounts[0], ledger.accounts[1], ledger.accounts[2]
    g: dict[str, int] = {}
    adj = AdjudicatorClient.deploy(w3, c.address)
    receipt = w3.eth.get_transaction_receipt(w3.eth.get_block("latest")["transactions"][0])
    g["deploy Adjudicator"] = int(receipt["gasUsed"])
    token = Erc20.deploy_test_token(w3, c.address)

    def params(app: str = ETH, who: tuple[str, str] = (a.address, b.address)) -> Params:
        return Params(who, 100, secrets.token_bytes(32), app)

    def sign2(s: State) -> list[bytes]:
        return [adj.sign(s, a.key), adj.sign(s, b.key)]

    # cooperative, ETH: the close pays both
    p = params()
    cid = adj.channel_id(p)
    g["deposit ETH (first)"] = adj.deposit(p, 0, ETH, 10**18, a.address).gas_used
    g["deposit ETH (top-up)"] = adj.deposit(p, 1, ETH, 10**18, b.address).gas_used
    s = State(cid, 10, (ETH,), ((7 * 10**17, 13 * 10**17),), is_final=True)
    g["concludeCooperative"] = adj.conclude_cooperative(p, s, sign2(s), a.address).gas_used
    g[COOPERATIVE_EXIT] = g["concludeCooperative"]

    # ERC-20 funding and cooperative close
    p = params()
    cid = adj.channel_id(p)
    token.mint(a.address, 1000, a.address)
    token.approve(adj.address, 1000, a.address)
    g["deposit ERC-20 (first)"] = adj.deposit(p, 0, token.address, 1000, a.address).gas_used
    s = State(cid, 1, (token.address,), ((400, 600),), is_final=True)
    g["concludeCooperative ERC-20"] = adj.conclude_cooperative(p, s, sign2(s), a.address).gas_used

    # a payout the receiver refuses is credited, then withdrawn by its owner
    blocking = Erc20.deploy_blocklist_token(w3, c.address)
    p = params()
    cid = adj.channel_id(p)
    blocking.mint(a.address, 1000, a.address)
    blocking.approve(adj.address, 1000, a.address)
    adj.deposit(p, 0, blocking.address, 1000, a.address)
    blocking.set_blocked(b.address, True, c.address)
    s = State(cid, 1, (blocking.address,), ((400, 600),), is_final=True)
    adj.conclude_cooperative(p, s, sign2(s), a.address)
    blocking.set_blocked(b.address, False, c.address)
    g["withdraw ERC-20 (credited payout)"] = adj.withdraw(
        p, 1, blocking.address, b.address, b.address
    ).gas_used
    wallet = deploy_contract(w3, "TestWallet", sender=c.address)
    try:
        delegate_code(w3, b, wallet.address, wallet.encode_abi("configure", [REJECT, ETH]))
    except ContractReverted:
        pass  # no EIP-7702 on this ledger
    else:
        p = params()
        cid = adj.channel_id(p)
        adj.deposit(p, 0, ETH, 10**18, a.address)
        s = State(cid, 1, (ETH,), ((4 * 10**17, 6 * 10**17),), is_final=True)
        adj.conclude_cooperative(p, s, sign2(s), a.address)
        delegate_code(w3, b, ETH)  # b drops the rejecting code, then pulls its payout
        g["withdraw ETH (credited payout)"] = adj.withdraw(p, 1, ETH, b.address, b.address).gas_used

    # dispute, ETH: the conclusion pays both
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
    g[NONCOOPERATIVE_EXIT] = g["register"] + g["conclude"]

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

    # dispute, ERC-20 (its holdings are not in the dispute's slot, as ETH's are)
    p = params()
    cid = adj.channel_id(p)
    token.mint(b.address, 1000, b.address)
    token.approve(adj.address, 1000, b.address)
    adj.deposit(p, 1, token.address, 1000, b.address)
    s = State(cid, 5, (token.address,), ((300, 700),))
    r = adj.register(p, s, sign2(s), b.address)
    g["register (ERC-20)"] = r.gas_used
    ledger.time_travel(r.event("Registered").args["timeout"])
    g["conclude (ERC-20)"] = adj.conclude(p, s, b.address).gas_used

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
        # anvil on Prague (EIP-7702) like py-evm; no operation here costs differently
        # than on Cancun
        with anvil_ledger(hardfork="prague") if kind == "anvil" else make_ledger(kind) as ledger:
            results[kind] = measure(ledger)
    print(format_table(results))


if __name__ == "__main__":
    main()
