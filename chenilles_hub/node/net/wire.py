"""Node-to-node messages: channel opening, funding notices, quotes, and the core's channel
messages.

One strict decoder for everything a peer can send, with the core's size limit: anything
else is a protocol violation and the peer is disconnected.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from chenilles_hub.circuit.quote import Quote, Rate
from chenilles_hub.core.messages import Accept, Ack, BoundedCodec, Propose, Reestablish, Reject
from chenilles_hub.core.model import (
    MAX_APP_DATA,
    Amount,
    Asset,
    Bytes32,
    ChannelParams,
    SignedState,
)
from chenilles_hub.core.virtual import VirtualTerms

ShortKey = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class OpenRequest(
    msgspec.Struct,
    frozen=True,
    forbid_unknown_fields=True,
    omit_defaults=True,
    tag="open_request",
):
    """The opener proposes a channel; ``salt`` is the one its per-channel key came from
    (the acceptor draws its own: a salt a peer chooses could make it reuse keys).
    An app channel names its ``app`` and the opening state's ``app_data`` (both omitted,
    so absent from the frame, for a payment channel)."""

    temp_id: Bytes32
    chain: Annotated[str, msgspec.Meta(max_length=96)]
    assets: Annotated[tuple[Asset, ...], msgspec.Meta(min_length=1, max_length=8)]
    deposits: Annotated[tuple[tuple[Amount, Amount], ...], msgspec.Meta(max_length=8)]
    challenge_duration: Annotated[int, msgspec.Meta(ge=1)]
    salt: Bytes32
    opener_key: ShortKey
    app: Annotated[str, msgspec.Meta(max_length=96)] = ""
    app_data: Annotated[bytes, msgspec.Meta(max_length=MAX_APP_DATA)] = b""


class OpenAccept(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="open_accept"):
    temp_id: Bytes32
    acceptor_key: ShortKey


class OpenRefused(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="open_refused"):
    temp_id: Bytes32
    reason: Annotated[str, msgspec.Meta(max_length=300)]


class OpenChannel(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="open_channel"):
    """The final params (the opener chose the nonce through its backend)."""

    temp_id: Bytes32
    params: ChannelParams


class FundingDone(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="funding_done"):
    channel_id: Bytes32
    txids: tuple[Annotated[str, msgspec.Meta(max_length=128)], ...]


class QuoteRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="quote_request"):
    """A payer asks its peer, a hub, for a quote: ``amount_out`` of ``asset_out`` delivered
    for ``asset_in``. Quotes travel over the peer connection because the payer has no
    business holding the hub's API token."""

    request_id: Bytes32
    asset_in: Asset
    asset_out: Asset
    amount_out: Amount


class QuoteReply(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="quote_reply"):
    """The hub's signed quote, or why it gives none (``error``, a code such as ``no_rate``)."""

    request_id: Bytes32
    quote: Quote | None = None
    error: Annotated[str, msgspec.Meta(max_length=300)] = ""


class VirtualOpenRequest(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="virtual_open_request"
):
    """Alice asks her hub for a virtual channel with ``peer`` (Bob), funded by her ledger
    channel ``ledger`` with the hub: V's opening split, deadline and grace."""

    request_id: Bytes32
    ledger: Bytes32
    peer: Bytes32
    split: tuple[Amount, Amount]
    deadline: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
    grace: Annotated[int, msgspec.Meta(ge=1, le=365 * 86400)]
    #: the rate (Bob's ledger's base units per V unit) Alice accepts, if she named one
    #: (from the hub's quote): an offer at another rate is refused
    rate: Rate | None = None


class VirtualOffer(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="virtual_offer"):
    """The hub's terms, sent to both ends; each answers with :class:`VirtualAnswer`.
    ``unit`` is V's unit, Alice's ledger's first asset: an end whose ledger holds it
    refuses any rate but 1/1."""

    request_id: Bytes32
    terms: VirtualTerms
    unit: Asset | None = None


class VirtualKey(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="virtual_key"):
    """A ledger member's V key (secp256k1 address) for a ``virtual`` ledger channel on a
    chain whose ledger keys are not secp256k1 (Solana): its peer names it in V's terms
    and runs the ledger's rule with it (``VirtualLedgerApp(v_keys)``)."""

    ledger: Bytes32
    v_key: Annotated[str, msgspec.Meta(pattern="^0x[0-9a-fA-F]{40}$")]


#: The longest reason a ``VirtualAnswer`` carries (a longer one does not decode).
MAX_ANSWER_REASON = 300


class VirtualAnswer(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="virtual_answer"):
    """An end's answer to an offer (to the hub), or the hub's refusal (to the ends): the
    hub funds both guarantees only once both ends accepted."""

    request_id: Bytes32
    accepted: bool
    reason: Annotated[str, msgspec.Meta(max_length=MAX_ANSWER_REASON)] = ""


class VirtualFinal(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="virtual_final"):
    """An end tells the hub V's final state (both signatures) before settling its ledger:
    the hub then holds what it must show in the other ledger should that end stall."""

    request_id: Bytes32
    final: SignedState


NodeMessage = (
    OpenRequest
    | OpenAccept
    | OpenRefused
    | OpenChannel
    | FundingDone
    | QuoteRequest
    | QuoteReply
    | VirtualOpenRequest
    | VirtualOffer
    | VirtualAnswer
    | VirtualFinal
    | VirtualKey
    | Propose
    | Accept
    | Ack
    | Reject
    | Reestablish
)

_codec: BoundedCodec[NodeMessage] = BoundedCodec(NodeMessage, "node message")
encode = _codec.encode
decode = _codec.decode
