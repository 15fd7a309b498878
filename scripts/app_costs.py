#!/usr/bin/env python3
"""Gas (EVM) and compute units (Solana) of each forced-move operation of app channels.

    .venv/bin/python scripts/app_costs.py [--evm ethtester|anvil]

Runs the example apps (tic-tac-toe, escrow) on the embedded ledgers through the
ChainBackend API only, as the node does: open and fund an app channel, register an app
state, force a move (the adjudicator checks it and asks the app's on-chain rule: a
staticcall to the IApp contract on EVM, a CPI to the app program on Solana), answer a
forced move with a newer state both signed (challenge), and conclude on the app's
outcome. Prints one Markdown table per chain for docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
from typing import Any

from chenilles_app_escrow import rules as escrow
from chenilles_app_tictactoe import rules as ttt

from chenilles_hub import apps
from chenilles_hub.backend import ChainBackend, TxReceipt
from chenilles_hub.core import (
    Asset,
    AssetBalances,
    ChannelParams,
    ChannelState,
    Participant,
    SignedState,
)

DURATION = 100


def backend_for(chain: str, evm_ledger: str) -> ChainBackend:
    if chain == "evm":
        from chenilles_evm.backend import embedded_backend
        from chenilles_evm.ledgers import make_ledger

        backend: ChainBackend = embedded_backend(ledger=make_ledger(evm_ledger))
    else:
        from chenilles_solana.backend import embedded_backend as solana

        backend = solana()
    for name in ("tictactoe", "escrow"):
        backend.use_app(name, code=apps.app(name).onchain_code(backend.info.family))
    return backend


class Channel:
    def __init__(self, b: ChainBackend, app: str, deposits: tuple[int, int], data: bytes) -> None:
        self.b = b
        self.accounts = (b.create_account(), b.create_account())
        nonce = secrets.token_bytes(32)
        self.native = Asset(b.chain, "native")
        self.params = ChannelParams(
            chain=b.chain,
            participants=tuple(
                Participant(b.participant_key(a, nonce), hashlib.sha256(bytes([i])).digest())
                for i, a in enumerate(self.accounts)
            ),
            assets=(self.native,),
            challenge_duration=DURATION,
            nonce=nonce,
            app=app,
        )
        self.auth = [b.authority(self.params, a, i) for i, a in enumerate(self.accounts)]
        self.rules = apps.app(app).rules()
        self.receipts: dict[str, TxReceipt] = {}
        self.receipts["fund (open app channel + deposit)"] = b.fund(
            self.params, 0, self.accounts[0], self.native, deposits[0]
        )
        if deposits[1]:
            b.fund(self.params, 1, self.accounts[1], self.native, deposits[1])
        self.v0 = ChannelState(
            b.channel_id(self.params), 0, (AssetBalances(self.native, deposits),), app_data=data
        )

    def move(self, state: ChannelState, who: int, data: bytes) -> ChannelState:
        after = self.rules.apply(self.params, state, who, data)
        return ChannelState(
            after.channel_id, state.version + 1, after.balances, after.htlcs, after.app_data
        )

    def both(self, state: ChannelState) -> SignedState:
        return SignedState(state, tuple(a.sign(self.params, state) for a in self.auth))

    def by(self, who: int, state: ChannelState) -> SignedState:
        sigs = [b"", b""]
        sigs[who] = self.auth[who].sign(self.params, state)
        return SignedState(state, (sigs[0], sigs[1]))


def measure(b: ChainBackend) -> list[tuple[str, TxReceipt]]:
    rows: list[tuple[str, TxReceipt]] = []
    s = 10**6
    game = Channel(b, "tictactoe", (s, s), ttt.Game.new(0).encode())
    rows.append(
        ("tictactoe: fund (open app channel + deposit)", next(iter(game.receipts.values())))
    )
    v = [game.v0]
    for who, cell in ((0, 4), (1, 0), (0, 2)):
        v.append(game.move(v[-1], who, bytes([cell])))
    who = game.accounts[0]
    rows.append(("tictactoe: register (app state)", b.register(game.params, game.both(v[1]), who)))
    rows.append(
        ("tictactoe: challenge (newer state)", b.challenge(game.params, game.both(v[2]), who))
    )
    b.advance_time(DURATION + 1)
    rows.append(("tictactoe: force_move", b.force_move(game.params, game.by(0, v[3]), 0, who)))
    rows.append(
        (
            "tictactoe: challenge (answer a forced move with a state both signed)",
            b.challenge(game.params, game.both(v[3]), game.accounts[1]),
        )
    )
    b.advance_time(DURATION + 1)
    v4 = game.move(v[3], 1, b"\x06")
    rows.append(
        ("tictactoe: force_move (answer)", b.force_move(game.params, game.by(1, v4), 1, who))
    )
    b.advance_time(DURATION + 1)
    rows.append(("tictactoe: conclude (on the app's outcome)", b.conclude(game.params, who)))

    terms = escrow.Escrow(
        escrow.LOCKED, 0, b.now() + 10**6, 400, escrow.sha256(b"R" * 32), escrow.sha256(b"F" * 32)
    )
    esc = Channel(b, "escrow", (1000, 0), terms.encode())
    rows.append(("escrow: register (app state)", b.register(esc.params, esc.both(esc.v0), who)))
    b.advance_time(DURATION + 1)
    ruled = esc.move(esc.v0, 1, b"\x03" + b"R" * 32)
    rows.append(
        (
            "escrow: force_move (arbiter's ruling, sha256 on-chain)",
            b.force_move(esc.params, esc.by(1, ruled), 1, who),
        )
    )
    b.advance_time(DURATION + 1)
    rows.append(("escrow: conclude", b.conclude(esc.params, who)))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--evm", default="ethtester", choices=("ethtester", "anvil"))
    args = ap.parse_args()
    for chain in ("evm", "solana"):
        b = backend_for(chain, args.evm)
        rows = measure(b)
        unit = rows[0][1].cost_unit
        label = f"{chain} ({args.evm})" if chain == "evm" else f"{chain} (LiteSVM)"
        print(f"\n| {label} operation | {unit} | fee (base units) |")
        print("|---|---:|---:|")
        for name, r in rows:
            print(f"| {name} | {r.cost:,} | {r.fee:,} |")
        close: Any = getattr(b, "close", None)
        if close:
            close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
