"""A hub's forwarding policy: what it charges, at which rates it converts, and the check
an incoming HTLC must pass before the hub offers the next one.

The check is the hub's own safety: whatever the payer's router computed, the hub only
forwards if (a) what it receives covers what it sends plus its fee, at its own rate, and
(b) the incoming HTLC outlives the outgoing one by at least the time the hub needs to
enforce its claim on the incoming chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..circuit.errors import CircuitError, WrongAmount
from ..circuit.quote import Rate
from ..core import Asset, Htlc, TimeModel
from ..core.errors import UnsafeTimelock


class NoRate(CircuitError):
    code = "no_rate"


@dataclass(frozen=True)
class FeePolicy:
    base: int = 0
    ppm: int = 0

    def fee(self, amount_out: int) -> int:
        return self.base + -(-amount_out * self.ppm // 1_000_000)


@dataclass
class ForwardingPolicy:
    fees: dict[Asset, FeePolicy] = field(default_factory=dict)
    rates: dict[tuple[Asset, Asset], Rate] = field(default_factory=dict)

    def fee(self, asset_out: Asset, amount_out: int) -> int:
        return self.fees.get(asset_out, FeePolicy()).fee(amount_out)

    def required_incoming(self, asset_in: Asset, asset_out: Asset, amount_out: int) -> int:
        """The least incoming amount that pays ``amount_out`` plus the fee."""
        gross = amount_out + self.fee(asset_out, amount_out)
        if asset_in == asset_out:
            return gross
        rate = self.rates.get((asset_in, asset_out))
        if rate is None:
            raise NoRate(f"this hub does not convert {asset_in} into {asset_out}")
        return rate.required_input(gross)


def enforcement_delta(model: TimeModel, challenge_duration: int) -> int:
    """Seconds a hub needs between an incoming and an outgoing expiry (DESIGN.md section 5)."""
    return model.enforcement_time(challenge_duration)


def check_forward(
    policy: ForwardingPolicy,
    incoming: Htlc,
    incoming_model: TimeModel,
    incoming_challenge: int,
    amount_out: int,
    asset_out: Asset,
    expiry_out: int,
    now: int,
) -> None:
    """Raise unless forwarding ``incoming`` as (amount_out, asset_out, expiry_out) is safe
    and paid for."""
    needed = policy.required_incoming(incoming.asset, asset_out, amount_out)
    if incoming.amount < needed:
        raise WrongAmount(
            f"incoming {incoming.amount} {incoming.asset} does not cover {amount_out} "
            f"{asset_out} plus fees (needs {needed})"
        )
    delta = enforcement_delta(incoming_model, incoming_challenge)
    if incoming.expiry - expiry_out < delta:
        raise UnsafeTimelock(
            f"incoming HTLC expires {incoming.expiry - expiry_out}s after the outgoing one; "
            f"enforcing on {incoming.asset.chain} needs {delta}s"
        )
    if expiry_out <= now:
        raise UnsafeTimelock("the outgoing expiry is already past")
