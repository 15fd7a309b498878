"""A hub's forwarding policy (its fees and conversion rates) and the check an incoming HTLC
must pass before the hub offers the next one.

The rule itself lives in the core router (:func:`chenilles_hub.core.routing.check_forward`),
so the payer's route planning and the hub's acceptance can never disagree: this module
only describes the hub's own channels and book in the router's terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from chenilles_hub.circuit.quote import Quote, Rate
from chenilles_hub.core import Asset, Htlc, TimeModel
from chenilles_hub.core.routing import AssetRate, ChannelEdge, check_forward, rate_book

from .records import Channel


@dataclass(frozen=True)
class FeePolicy:
    """What the hub charges for sending on one of its channels: base + proportional (ppm)."""

    base: int = 0
    ppm: int = 0

    def of(self, amount: int) -> int:
        """The fee for sending ``amount``, rounded up (as ``ChannelEdge.fee``)."""
        return self.base + (amount * self.ppm + 999_999) // 1_000_000


@dataclass
class ForwardingPolicy:
    fees: dict[Asset, FeePolicy] = field(default_factory=dict)
    #: (asset received, asset sent) -> rate: the hub's standing book.
    rates: dict[tuple[Asset, Asset], Rate] = field(default_factory=dict)

    def fee(self, asset: Asset, amount: int) -> int:
        """What we charge for sending ``amount`` of ``asset``."""
        return self.fees.get(asset, FeePolicy()).of(amount)

    def asset_rates(self, node_id: bytes) -> list[AssetRate]:
        return [
            AssetRate(node_id, asset_in, asset_out, rate.numerator, rate.denominator)
            for (asset_in, asset_out), rate in self.rates.items()
        ]


def enforcement_delta(model: TimeModel, challenge_duration: int) -> int:
    """Seconds a hub needs between an incoming and an outgoing expiry (design.md, section 5)."""
    return model.enforcement_time(challenge_duration)


def channel_edge(
    channel: Channel, asset: Asset, policy: ForwardingPolicy, node_id: bytes, outgoing: bool
) -> ChannelEdge:
    """``channel`` as a router edge: ``outgoing`` from ``node_id`` to its peer (capacity =
    our free balance, our fees), or incoming from the peer to us (the peer's side)."""
    free = channel.machine.free(asset)  # a channel unused since a restart: snapshot unread
    fee = policy.fees.get(asset, FeePolicy()) if outgoing else FeePolicy()
    return ChannelEdge(
        channel_id=channel.channel_id,
        chain=channel.params.chain,
        asset=asset,
        source=node_id if outgoing else channel.peer,
        target=channel.peer if outgoing else node_id,
        capacity=free[channel.me] if outgoing else free[1 - channel.me],
        fee_base=fee.base,
        fee_ppm=fee.ppm,
        challenge_duration=channel.params.challenge_duration,
    )


def check_incoming_forward(
    policy: ForwardingPolicy,
    node_id: bytes,
    incoming: Channel,
    htlc: Htlc,
    outgoing: Channel,
    amount_out: int,
    asset_out: Asset,
    expiry_out: int,
    now: int,
    quote: Quote | None = None,
) -> None:
    """Raise unless forwarding ``htlc`` as (amount_out, asset_out, expiry_out) on
    ``outgoing`` pays the hub's fee at its rate and leaves it time to enforce upstream.

    With a ``quote`` (checked by the caller's ``QuoteBook``) the conversion is priced at the
    quote's rate and fee, whatever the standing book says now: that is what we promised."""
    outgoing.machine.state  # noqa: B018  (decoded: we check the signed state, not holdings)
    out_edge = channel_edge(outgoing, asset_out, policy, node_id, outgoing=True)
    rates = policy.asset_rates(node_id)
    if quote is not None:
        rate = quote.rate
        rates = [
            AssetRate(node_id, quote.asset_in, quote.asset_out, rate.numerator, rate.denominator)
        ]
        out_edge = msgspec.structs.replace(out_edge, fee_base=quote.fee, fee_ppm=0)
    check_forward(
        htlc.amount,
        htlc.asset,
        htlc.expiry,
        channel_edge(incoming, htlc.asset, policy, node_id, outgoing=False),
        amount_out,
        asset_out,
        expiry_out,
        out_edge,
        rates=rate_book(rates),
        time_models={incoming.params.chain: incoming.backend.time_model()},
        now=now,
    )
