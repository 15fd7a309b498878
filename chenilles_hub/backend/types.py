"""The values that cross the line between the node and a chain backend: what a backend is
(``BackendInfo``), how amounts are written (``AssetInfo``), what an on-chain action cost
(``TxReceipt``), the chain events the watcher follows, an app dispute as the ledger records
it, and the ledger's refusals (``LedgerError``). Plain data, no behaviour: the roles that
produce them are in ``roles.py``.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from ..core import Asset, AssetBalances, ChannelState

# The errors a backend raises for input it refuses before anything reaches the ledger
# (``StateAuthority.sign``, ``channel_id``, ``fund``...): the core's typed ``ChannelError``s,
# re-exported here so a backend imports them from a public module. The core lets a
# ``ChannelError`` from ``sign`` reach the proposer (the proposal is not made) or the peer
# (the proposal is refused); any other exception is a bug in the backend.
from ..core.errors import AmountOutOfRange as AmountOutOfRange
from ..core.errors import BadPreimage as BadPreimage
from ..core.errors import ChannelError as ChannelError
from ..core.errors import InvalidParams as InvalidParams
from ..core.errors import TooManyHtlcs as TooManyHtlcs
from ..core.errors import UnknownAsset as UnknownAsset
from ..core.errors import UnmineableState as UnmineableState

#: The operation names ``ChainBackend.estimate_fee`` must know: each on-chain action of the
#: protocol, named as its ``TxReceipt.operation``. The node asks for ``"fund"`` (a wallet
#: must hold the deposit plus this) before it deposits; an unknown name raises ``ValueError``.
FEE_OPERATIONS = (
    "fund",
    "close_cooperative",
    "register",
    "challenge",
    "conclude",
    "withdraw",
    "claim_htlc",
    "refund_htlc",
)


class BackendInfo(msgspec.Struct, frozen=True):
    """What a backend is and what its chain can do. The capabilities are how the node and
    the conformance suite (``chenilles_hub.testing``) learn where a chain genuinely differs,
    never by the backend's name.

    ``supports_apps``: whether the backend enforces app rules on-chain (forced moves,
    the ``use_app`` ... ``app_dispute`` methods below); an app channel on a backend that
    does not is refused at open.

    ``max_members``: the most members a channel on this backend may have (2: two-party
    only; N-party channels are ``core.group``, enforced by the backend's group contract);
    ``members_note`` says why a backend stops there, for the refusal's message.

    ``single_funder``: only participant 0 deposits (Bitcoin: one funding output); the other
    side's balance comes from payments.

    ``dispute``: how a stale registration is answered. ``"newest_wins"``: ``challenge``
    replaces it with the newer state and the channel concludes on that (EVM, Solana);
    ``"penalty"``: ``challenge`` punishes the revoked state and the honest side takes the
    whole channel (Bitcoin).

    ``reorgs``: the chain can retract blocks it reported, and the backend reports it
    (``Reorged``); ``False`` where it cannot happen (LiteSVM, eth-tester).

    ``conclusion_resolves_htlcs``: the conclusion of a dispute pays every HTLC of the
    registered state (revealed ones to the payee, expired ones back to the payer: EVM,
    Solana), so an HTLC of ours not revealed by then came back. ``False`` where each HTLC
    is an output of its own, taken by its own transaction (``claim_htlc``,
    ``refund_htlc``) whenever its deadline comes, before or after the conclusion
    (Bitcoin): the node then keeps the dispute open until every HTLC it can still take
    is taken.
    """

    name: str
    version: str
    family: str
    chains: tuple[str, ...]
    description: str = ""
    supports_apps: bool = False
    max_members: int = 2
    members_note: str = ""
    single_funder: bool = False
    dispute: str = "newest_wins"
    reorgs: bool = False
    conclusion_resolves_htlcs: bool = True


class AssetInfo(msgspec.Struct, frozen=True):
    """How people write amounts of an asset: ``symbol`` (``ETH``), ``decimals`` (18: one
    ETH is 10**18 base units) and the base unit's name (``wei``). What the demo and the
    CLI print; money itself is always an integer of base units."""

    symbol: str
    decimals: int = 0
    unit: str = "base unit"

    def format(self, amount: int) -> str:
        whole = f"{amount / 10**self.decimals:.{min(self.decimals, 8)}f}"
        return f"{whole} {self.symbol} ({amount} {self.unit})"


class TxReceipt(msgspec.Struct, frozen=True):
    """What an on-chain action cost and where it landed."""

    operation: str
    txid: str
    fee: int
    fee_asset: Asset
    cost: int  # gas (EVM), weight units (Bitcoin), compute units (Solana)
    cost_unit: str
    block: int | None = None
    #: Base units of ``fee_asset`` the transaction locked in accounts it created (Solana's
    #: rent-exempt minimum): not a fee, but out of the sender's wallet until those accounts
    #: are closed, so an operator's books count it with the fees. Negative: rent an earlier
    #: transaction locked, given back to the sender's wallet by closing the accounts
    #: (Solana's CLOSE_ACCOUNTS), so ``fee + rent`` is always what the wallet paid.
    rent: int = 0
    #: The fee came out of the channel's funds, borne by whoever the chain's rules charge
    #: (on Bitcoin the funder pays the commitment and closing transactions' fees), not
    #: out of the sender's wallet.
    fee_from_channel: bool = False


# --- chain events the watcher follows ------------------------------------------------------


class Funded(msgspec.Struct, frozen=True, tag="funded"):
    channel_id: bytes
    asset: Asset
    participant: int
    amount: int


class Registered(msgspec.Struct, frozen=True, tag="registered"):
    """``timeout``: the end of the challenge period, in unix seconds on the chain's own
    clock (the clock of ``ChainBackend.next_block_time``): the ledger concludes the dispute
    in a block whose time is ``>= timeout`` (EVM: ``block.timestamp >= timeout``; Solana:
    ``Clock.unix_timestamp >= deadline``; Bitcoin: the height clock's time of the height at
    which the CSV delay of the commitment's outputs has passed)."""

    channel_id: bytes
    version: int
    timeout: int


class Concluded(msgspec.Struct, frozen=True, tag="concluded"):
    channel_id: bytes
    version: int


class PreimageRevealed(msgspec.Struct, frozen=True, tag="preimage_revealed"):
    payment_hash: bytes
    preimage: bytes
    at: int


class NewBlock(msgspec.Struct, frozen=True, tag="new_block"):
    height: int
    time: int


class Reorged(msgspec.Struct, frozen=True, tag="reorged"):
    """Blocks the backend had reported left the chain: ``depth`` of them (an upper bound),
    with ``txids`` the transactions they held that are not confirmed any more. The events
    that follow in the same poll are what the new branch holds: every event of each
    channel that had one in the retracted blocks, again from its first (EVM), or the
    transactions the new blocks confirm (Bitcoin). The node re-checks deposits and re-arms
    the watcher's actions for the chain's channels."""

    depth: int
    txids: tuple[str, ...]


class Progressed(msgspec.Struct, frozen=True, tag="progressed"):
    """A forced move in an app channel was recorded: the registered state is now version
    ``version`` (moved by ``mover``), with these free balances (params' asset order), app
    data and final flag; the next move, or a newer state signed by both, is accepted until
    ``timeout``, and the channel concludes on this state from then on. Reported after the
    ``Registered(channel, version, timeout)`` a backend also reports for the same move."""

    channel_id: bytes
    version: int
    timeout: int
    mover: int
    balances: tuple[AssetBalances, ...]
    app_data: bytes
    final: bool


ChainEvent = Funded | Registered | Concluded | PreimageRevealed | NewBlock | Reorged | Progressed


class AppDispute(msgspec.Struct, frozen=True):
    """An app channel's dispute as its ledger records it (chain time throughout).

    ``phase``: ``registered`` (a state both signed; a strictly newer one replaces it until
    ``refute_until``), ``forced`` (the last change was a forced move; a newer state both
    signed, of at least its version, replaces it until ``refute_until``) or
    ``concluded``. A forced move from ``state`` is accepted from ``move_from`` until
    ``move_until``; the channel concludes on ``state`` from ``conclude_at``.
    """

    phase: str
    state: ChannelState
    refute_until: int
    move_from: int
    move_until: int
    conclude_at: int


class LedgerError(Exception):
    """The ledger refused an action (reverted, rejected by consensus). ``reason`` is its word.

    ``receipt`` is set when the refusal still cost a fee (an EVM transaction mined but
    reverted): the operator's books must show it even though the action failed."""

    def __init__(self, operation: str, reason: str, receipt: TxReceipt | None = None) -> None:
        super().__init__(f"{operation}: {reason}")
        self.operation = operation
        self.reason = reason
        self.receipt = receipt


class NotRegistered(LedgerError):
    """``conclude`` found no registration of the channel on the chain. The chain had
    reported one (the watcher waited out its period), so a reorg took it back and nobody
    sent it again: the node then registers its own latest state, to finish the close the
    registration started. A backend that can tell raises this instead of a bare
    ``LedgerError``; one that cannot leaves the conclusion failing, retried on every block,
    shown on the channel."""


class NothingToTake(LedgerError):
    """``claim_htlc`` or ``refund_htlc``: the HTLC has nothing of its own on the chain to
    take, and never will (Bitcoin: no output in the commitment on-chain, trimmed as dust;
    or the commitment is the peer's revoked one, whose penalty takes every output). On a
    chain whose conclusion leaves HTLCs alone the node then stops trying and counts the
    HTLC resolved (one of ours failed), so the dispute can end."""


class NotYet(LedgerError):
    """``conclude``: the dispute's period is over, but what is ours on-chain cannot be
    taken yet, and the backend knows it without asking the chain to refuse it (Bitcoin:
    an output's own CSV delay, ``to_self_delay`` blocks from its confirmation, after an
    HTLC taken late). ``reason`` says what it waits for. The node shows it as the
    channel's wait, not as a failure, and asks again on the next block."""


class Account(Protocol):
    """A key on one chain. ``chain_key`` is its public form, as ChannelParams carry it."""

    @property
    def chain_key(self) -> str: ...
