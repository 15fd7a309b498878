#!/usr/bin/env python3
"""Compute units, fees and transaction sizes of every Solana backend operation.

Runs the committed program in LiteSVM through the ChainBackend API (a SOL + test-token
channel) and prints a Markdown table for docs/solana.md, then the largest register
transaction per number of assets and HTLCs (Solana caps a transaction at 1232 bytes).

    .venv/bin/python scripts/solana_costs.py
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backends" / "solana"))

from chenilles_solana import program_client as pc  # noqa: E402
from chenilles_solana.backend import embedded_backend  # noqa: E402
from chenilles_solana.ledger import MAX_TRANSACTION_SIZE  # noqa: E402
from solders.hash import Hash  # noqa: E402
from solders.keypair import Keypair  # noqa: E402
from solders.message import Message  # noqa: E402
from solders.pubkey import Pubkey  # noqa: E402
from solders.transaction import Transaction  # noqa: E402

from chenilles_hub.core import (  # noqa: E402
    AssetBalances,
    ChannelParams,
    ChannelState,
    Htlc,
    Participant,
    SignedState,
    payment_hash,
)

SOL = 1_000_000_000
T0 = 1_750_000_000
DURATION = 600


def main() -> int:
    b = embedded_backend(start_time=T0)
    rows: list[tuple[str, int, int, int]] = []

    def measure(name: str, receipt_fn) -> None:  # type: ignore[no-untyped-def]
        receipt = receipt_fn()
        sent = b.last_sent
        assert sent is not None
        rows.append((name, receipt.cost, receipt.fee, sent.size))

    alice, bob = b.create_account(), b.create_account()
    sol, tok = b.assets()[0], b.assets()[1]
    params = ChannelParams(
        chain=b.chain,
        participants=(
            Participant(alice.chain_key, b"\x01" * 32),
            Participant(bob.chain_key, b"\x02" * 32),
        ),
        assets=(sol, tok),
        challenge_duration=DURATION,
        nonce=bytes(32),
    )
    cid = b.channel_id(params)
    auth = [b.authority(params, alice, 0), b.authority(params, bob, 1)]

    def signed(version: int, htlcs: tuple[Htlc, ...] = (), final: bool = False) -> SignedState:
        locked = sum(h.amount for h in htlcs)
        st = ChannelState(
            cid,
            version,
            (AssetBalances(sol, (2 * SOL - locked, SOL)), AssetBalances(tok, (400, 100))),
            htlcs,
            final=final,
        )
        return SignedState(st, tuple(a.sign(params, st, None) for a in auth))

    measure(
        "fund (open channel + vault, deposit SOL)", lambda: b.fund(params, 0, alice, sol, 2 * SOL)
    )
    measure("fund (deposit SOL)", lambda: b.fund(params, 1, bob, sol, SOL))
    measure("fund (deposit SPL token)", lambda: b.fund(params, 0, alice, tok, 500))
    preimages = [hashlib.sha256(bytes([i])).digest() for i in range(pc.MAX_HTLCS)]
    htlcs = tuple(
        Htlc(i, 0, sol, SOL // 100, payment_hash(p), T0 + 7200, T0 + 7200 - 120)
        for i, p in enumerate(preimages)
    )
    measure("register (0 HTLCs)", lambda: b.register(params, signed(1), alice))
    measure("challenge (1 HTLC)", lambda: b.challenge(params, signed(2, htlcs[:1]), alice))
    measure("challenge (8 HTLCs)", lambda: b.challenge(params, signed(3, htlcs), alice))
    measure(
        "claim_htlc (reveal preimage)", lambda: b.claim_htlc(params, htlcs[0], preimages[0], bob)
    )
    b.advance_time(7200)
    measure("conclude (8 HTLCs)", lambda: b.conclude(params, alice))
    measure("withdraw SOL", lambda: b.withdraw(params, 1, bob, sol))
    measure("withdraw SPL token", lambda: b.withdraw(params, 1, bob, tok))
    measure(
        "withdraw SOL + SPL token, close accounts (by the rent payer)",
        lambda: b.withdraw(params, 0, alice, sol),
    )

    params2 = ChannelParams(
        chain=b.chain,
        participants=params.participants,
        assets=(sol, tok),
        challenge_duration=DURATION,
        nonce=b"\x01" * 32,
    )
    cid2 = b.channel_id(params2)
    b.fund(params2, 0, alice, sol, SOL)
    b.fund(params2, 0, alice, tok, 50)
    final = ChannelState(
        cid2,
        7,
        (AssetBalances(sol, (SOL // 2, SOL // 2)), AssetBalances(tok, (20, 30))),
        final=True,
    )
    fs = SignedState(final, tuple(a.sign(params2, final, None) for a in auth))
    measure("close_cooperative (SOL + token)", lambda: b.close_cooperative(params2, fs, bob))
    measure(
        "close_accounts (after close_cooperative, SOL + token)",
        lambda: b.withdraw(params2, 0, alice, sol),
    )
    params3 = ChannelParams(
        chain=b.chain,
        participants=params.participants,
        assets=(sol,),
        challenge_duration=DURATION,
        nonce=b"\x02" * 32,
    )
    b.fund(params3, 0, alice, sol, SOL)
    measure(
        "conclude (0 HTLCs, after final register)", lambda: _register_final(b, params3, auth, alice)
    )

    print(f"program: {len(pc.load_program())} bytes\n")
    print("| operation | compute units | fee (lamports) | tx size (bytes) |")
    print("|---|---:|---:|---:|")
    for name, cu, fee, size in rows:
        print(f"| {name} | {cu} | {fee} | {size} |")
    print()
    print(_size_table())
    return 0


def _register_final(b, params, auth, account):  # type: ignore[no-untyped-def]
    cid = b.channel_id(params)
    st = ChannelState(cid, 1, (AssetBalances(params.assets[0], (SOL, 0)),), final=True)
    b.register(params, SignedState(st, tuple(a.sign(params, st, None) for a in auth)), account)
    return b.conclude(params, account)


def _size_table() -> str:
    """Serialized size of a register transaction for each (assets, HTLCs) combination."""
    pid, payer, a, bk = Pubkey.new_unique(), Keypair(), Keypair(), Keypair()
    lines = ["| assets \\ HTLCs | " + " | ".join(str(n) for n in range(9)) + " |"]
    lines.append("|---|" + "---:|" * 9)
    for n_assets in range(1, pc.MAX_ASSETS + 1):
        cells = []
        for n_htlcs in range(pc.MAX_HTLCS + 1):
            msg = pc.ChannelStateMsg(
                pid,
                bytes(32),
                1,
                False,
                tuple(pc.AssetBalances(bytes(32), 1, 1) for _ in range(n_assets)),
                tuple(pc.HtlcTerms(i, 0, 1, bytes(32), 10**9) for i in range(n_htlcs)),
            ).encode()
            ixs = [pc.sign_state(msg, a, bk), pc.register_ix(pid, Pubkey.new_unique())]
            size = len(bytes(Transaction([payer], Message(ixs, payer.pubkey()), Hash.default())))
            cells.append(f"{size}" + ("" if size <= MAX_TRANSACTION_SIZE else " ✗"))
        lines.append(f"| {n_assets} | " + " | ".join(cells) + " |")
    title = "register transaction size (✗: over the 1232-byte limit; the authority refuses it)"
    return title + "\n\n" + "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
