"""Apps on Solana: app ids bound to their app programs, forced moves through the channel
program's PROGRESS, and an app channel's dispute read back from its account.

Mixed into :class:`~chenilles_solana.backend.SolanaBackend` (kept apart so the backend
module stays about payment channels). The program's timing, in chain time (Clock unix
timestamp), with ``D`` the challenge duration and ``T`` the registration's deadline:

- registered (status DISPUTE): a strictly newer state both signed replaces it until ``T``
  (``T`` is not restarted); a first forced move is accepted in ``[T, T + D)``; a non-final
  app state concludes from ``T + D`` (a final one, or a payment channel, at ``T``);
- after a forced move at time ``m`` (status FORCED, deadline ``m + D``, or ``m`` for a final
  move): the next forced move, or a state both signed of at least that version (which
  restarts a period ``D``), is accepted until the deadline; the channel concludes from then.

The app program is called by the channel program through CPI with the app ABI
(``contracts/solana/chenilles_app.h``) and no account.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from chenilles_hub.backend import AppDispute, LedgerError, Progressed, TxReceipt
from chenilles_hub.core import (
    Asset,
    AssetBalances,
    ChannelParams,
    ChannelState,
    Htlc,
    SignedState,
)
from chenilles_hub.core.errors import InvalidParams

from . import program_client as pc
from .authority import CLOCK_MARGIN, participant_keys, state_message
from .ledger import LiteSVMLedger

if TYPE_CHECKING:
    from .ledger import Ledger

__all__ = ["ForcedMoves", "app_program_id"]


def app_program_id(app_id: str) -> Pubkey:
    """Where an embedded ledger deploys an app's program (fixed, so ids are reproducible)."""
    return Pubkey.from_bytes(hashlib.sha256(b"chenilles/solana/app/" + app_id.encode()).digest())


class ForcedMoves:
    """The app half of the Solana backend (``use_app``, ``force_move``, ``app_dispute``)."""

    # provided by SolanaBackend
    ledger: Ledger
    chain: str
    program_id: Pubkey
    _apps: dict[str, Pubkey]

    if TYPE_CHECKING:

        def _send(
            self, operation: str, instructions: Sequence[Instruction], signers: Sequence[Keypair]
        ) -> TxReceipt: ...

        def channel_account(self, params: ChannelParams) -> pc.ChannelAccount | None: ...

        def _asset_of(self, cid: bytes, index: int) -> Asset: ...

    def app_program(self, params: ChannelParams) -> Pubkey | None:
        """The app program of an app channel; ``InvalidParams`` for an app not bound here."""
        if not params.app:
            return None
        program = self._apps.get(params.app)
        if program is None:
            raise InvalidParams(
                f"app {params.app!r} is not usable on {params.chain} (no program bound to it)"
            )
        return program

    def use_app(self, app_id: str, code: bytes | None = None, address: str | None = None) -> str:
        """Bind ``app_id`` to the deployed program ``address``, or, on the embedded ledger,
        deploy ``code`` (the app's SBF program) at a fixed id. An id stays bound to the
        program it was first bound to (channel ids commit to it)."""
        if not app_id:
            raise ValueError("an app id is a non-empty name")
        bound = self._apps.get(app_id)
        if address is not None:
            program = Pubkey.from_string(address)
            if bound is not None and bound != program:
                raise LedgerError("use_app", f"app {app_id!r} is bound to {bound} already")
            view = self.ledger.account(program)
            if view is None:
                raise LedgerError("use_app", f"no program at {program}")
        elif bound is not None:
            return str(bound)
        elif code is None:
            raise LedgerError("use_app", f"app {app_id!r}: no program id and no code")
        elif isinstance(self.ledger, LiteSVMLedger):
            program = app_program_id(app_id)
            self.ledger.svm.add_program(program, bytes(code))
        else:
            raise LedgerError(
                "use_app",
                f"deploy app {app_id!r}'s program with the Solana CLI, then bind its id",
            )
        self._apps[app_id] = program
        return str(program)

    def force_move(
        self, params: ChannelParams, move: SignedState, mover: int, account: Any
    ) -> TxReceipt:
        """PROGRESS: the Ed25519 instruction carries the mover's signature over the new
        state's message; the program checks the rest and asks the app program."""
        app = self.app_program(params)
        if app is None:
            raise LedgerError("force_move", "NO_APP: a payment channel has no forced moves")
        if mover not in (0, 1) or len(move.signatures) != 2 or not move.signatures[mover]:
            raise ValueError(f"the move needs participant {mover}'s signature")
        channel = pc.channel_pda(self.program_id, move.state.channel_id)[0]
        message = state_message(self.program_id, params, move.state)
        key = participant_keys(params)[mover]
        ed = pc.ed25519_verify_ix(message, [(bytes(key), move.signatures[mover])])
        ix = pc.progress_ix(self.program_id, channel, app, mover, 0)
        signer = getattr(account, "keypair", account)
        if not isinstance(signer, Keypair):
            raise TypeError(f"not a Solana account: {account!r}")
        return self._send("force_move", [ed, ix], [signer])

    def app_dispute(self, params: ChannelParams) -> AppDispute | None:
        onchain = self.channel_account(params)
        if onchain is None or onchain.status == pc.ST_OPEN:
            return None
        state = self._core_state(params, onchain)
        t, duration = onchain.deadline, params.challenge_duration
        if onchain.status in (pc.ST_CONCLUDED, pc.ST_CLOSED):
            return AppDispute("concluded", state, 0, 0, 0, t)
        if onchain.status == pc.ST_DISPUTE:
            if params.app and not onchain.final:
                return AppDispute("registered", state, t, t, t + duration, t + duration)
            return AppDispute("registered", state, t, t, t, t)
        moved_at = t if onchain.final else t - duration
        return AppDispute("forced", state, t, moved_at, t, t)

    def _core_state(self, params: ChannelParams, onchain: pc.ChannelAccount) -> ChannelState:
        return ChannelState(
            channel_id=onchain.channel_id,
            version=onchain.version,
            balances=tuple(
                AssetBalances(asset, (b[0], b[1]))
                for asset, b in zip(params.assets, onchain.balances, strict=True)
            ),
            htlcs=tuple(
                Htlc(
                    id=h.id,
                    payer=h.payer,
                    asset=params.assets[h.asset],
                    amount=h.amount,
                    payment_hash=h.payment_hash,
                    expiry=h.expiry + CLOCK_MARGIN,
                    native_expiry=h.expiry,
                )
                for h in onchain.htlcs
            ),
            app_data=onchain.app_data,
            final=onchain.final,
        )

    def _progressed(self, ev: pc.ProgramEvent) -> Progressed:
        return Progressed(
            channel_id=ev.channel_id,
            version=ev.version,
            timeout=ev.deadline,
            mover=ev.participant,
            balances=tuple(
                AssetBalances(self._asset_of(ev.channel_id, k), (a, b))
                for k, (a, b) in enumerate(ev.balances)
            ),
            app_data=ev.app_data,
            final=ev.final,
        )
