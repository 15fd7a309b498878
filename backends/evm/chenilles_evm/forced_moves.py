"""Apps on EVM: app ids bound to their ``IApp`` contracts, forced moves through the
adjudicator's ``progress``, and an app channel's dispute read back from the chain.

Mixed into :class:`~chenilles_evm.backend.EvmBackend` (kept apart so the backend module
stays about payment channels). The adjudicator's timing, in chain time, with ``D`` the
channel's challenge duration and ``T`` the registration's timeout:

- registered (phase DISPUTE): a strictly newer state both signed replaces it until ``T``
  (``register`` restarts ``T``); a first forced move is accepted in ``[T, T + D)``; a
  non-final app state concludes from ``T + D`` (a final one, or a payment channel, at ``T``);
- after a forced move at time ``m`` (phase FORCEEXEC, timeout ``m + D``, or ``m`` for a
  final move): the next forced move, or a state both signed of at least that version, is
  accepted until the timeout; the channel concludes from then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chenilles_hub.backend import AppDispute, LedgerError, TxReceipt
from chenilles_hub.core import ChannelParams, SignedState

from .adjudicator import Phase, State, _state_from_event
from .mapping import checksum, from_state, to_state

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3

    from .adjudicator import AdjudicatorClient
    from .eip712 import Params

__all__ = ["ForcedMoves"]


class ForcedMoves:
    """The app half of the EVM backend (``use_app``, ``force_move``, ``app_dispute``)."""

    # provided by EvmBackend
    w3: Web3
    adjudicator: AdjudicatorClient
    margin: int
    _apps: dict[str, str]
    _registered: dict[bytes, State]
    _origin_block: int

    if TYPE_CHECKING:

        def _params(self, params: ChannelParams) -> Params: ...

        def _local(self, account: Any) -> LocalAccount: ...

        def _submit_call(
            self, operation: str, sender: LocalAccount, fn: Any, value: int = 0
        ) -> TxReceipt: ...

        def _deploy_code(self, operation: str, code: bytes) -> str: ...

        def registered_state(self, params: ChannelParams, operation: str = ...) -> State: ...

        def channel_id(self, params: ChannelParams) -> bytes: ...

    def use_app(self, app_id: str, code: bytes | None = None, address: str | None = None) -> str:
        """Bind ``app_id`` to the ``IApp`` contract at ``address``, or deploy ``code`` (its
        creation bytecode) from a funded development account. An id stays bound to the
        contract it was first bound to (channel ids commit to it)."""
        if not app_id:
            raise ValueError("an app id is a non-empty name")
        bound = self._apps.get(app_id)
        if address is not None:
            address = checksum(address)
            if bound is not None and bound != address:
                raise LedgerError("use_app", f"app {app_id!r} is bound to {bound} already")
            if not self.w3.eth.get_code(address):
                raise LedgerError("use_app", f"no contract at {address}")
        elif bound is not None:
            return bound
        elif code is None:
            raise LedgerError("use_app", f"app {app_id!r}: no contract address and no code")
        else:
            address = self._deploy_code("use_app", code)
        self._apps[app_id] = address
        return address

    def force_move(
        self, params: ChannelParams, move: SignedState, mover: int, account: Any
    ) -> TxReceipt:
        """``progress`` from the registered state (recovered from the chain when this
        backend did not register it) to ``move.state``, signed by ``mover``."""
        p = self._params(params)
        if not params.app:
            raise LedgerError("force_move", "NoApp(): a payment channel has no forced moves")
        if mover not in (0, 1) or len(move.signatures) != 2 or not move.signatures[mover]:
            raise ValueError(f"the move needs participant {mover}'s signature")
        before = self.registered_state(params, "force_move")
        after = to_state(params, move.state)
        fn = self.adjudicator.contract.functions.progress(
            p.to_abi(), before.to_abi(), after.to_abi(), mover, move.signatures[mover]
        )
        receipt = self._submit_call("force_move", self._local(account), fn)
        self._registered[after.channel_id] = after
        return receipt

    def app_dispute(self, params: ChannelParams) -> AppDispute | None:
        cid = self.channel_id(params)
        info = self.adjudicator.dispute(cid)
        if info.phase == Phase.NONE:
            return None
        duration = params.challenge_duration
        if info.phase == Phase.CONCLUDED:
            state = self._last_registered(cid)
            core = from_state(params, state, self.margin)
            return AppDispute("concluded", core, 0, 0, 0, info.timeout)
        state = self.registered_state(params, "app_dispute")
        core = from_state(params, state, self.margin)
        t = info.timeout
        if info.phase == Phase.DISPUTE:
            if params.app and not state.is_final:
                return AppDispute("registered", core, t, t, t + duration, t + duration)
            return AppDispute("registered", core, t, t, t, t)
        moved_at = t if state.is_final else t - duration
        return AppDispute("forced", core, t, moved_at, t, t)

    def _last_registered(self, cid: bytes) -> State:
        """The last state registered or forced for a channel, whatever came after."""
        cached = self._registered.get(cid)
        if cached is not None:
            return cached
        logs = self.w3.eth.get_logs(
            {
                "address": self.adjudicator.address,
                "fromBlock": self._origin_block,
                "toBlock": "latest",
                "topics": [None, "0x" + cid.hex()],
            }
        )
        for event in reversed(self.adjudicator.decode_logs(logs)):
            if event.name == "Progressed":
                state: State = event.args["state"]
                return state
            if event.name == "Registered":
                tx = self.w3.eth.get_transaction(event.tx_hash)  # type: ignore[arg-type]
                _, args = self.adjudicator.contract.decode_function_input(tx["input"])
                return _state_from_event(args["state"])
        raise LedgerError("app_dispute", f"no registered state of 0x{cid.hex()} in the logs")
