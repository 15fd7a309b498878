"""What the operator changes at run time and the node must keep across restarts: its fees
and conversion rates (the forwarding policy) and the peers it was told to connect to.

Both are records in the store, written with the checkpoint of the request that changed
them (so the API answers only once the change is durable). The policy record, once
written, takes precedence over the config file's ``[policy]`` fees and rates: what the
operator set last wins, and a restart does not silently undo it.

Amounts stay integers in base units; a rate is a fraction of base units
(``out = floor(in * numerator / denominator)``). ``whole_unit_rate`` turns the rate an
operator writes in whole units ("1 ETH = 0.05 BTC") into that fraction, with each asset's
decimals from its backend.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction

import msgspec

from ...circuit.quote import Rate
from ...core import Asset
from ...core.errors import InvalidParams
from .context import NodeContext
from .forwarding import FeePolicy, ForwardingPolicy

POLICY_KEY = "operator/policy/v1"
PEER_PREFIX = "operator/peer/"
#: The largest numerator or denominator a rate may have (both fit the wire's integers).
MAX_RATE_TERM = 2**128


class FeeEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    asset: Asset
    base: int
    ppm: int


class RateEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    asset_in: Asset
    asset_out: Asset
    numerator: int
    denominator: int


class PolicyRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    fees: tuple[FeeEntry, ...] = ()
    rates: tuple[RateEntry, ...] = ()


class PeerRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    node_id: bytes
    host: str
    port: int


def whole_unit_rate(text: str, decimals_in: int, decimals_out: int) -> Rate:
    """``text`` whole units of ``asset_out`` for one whole unit of ``asset_in`` (a decimal
    such as ``"0.05"``) as a base-unit fraction: ``rate * 10**decimals_out /
    10**decimals_in``, exact (no float ever)."""
    try:
        value = Fraction(Decimal(text.strip()))
    except (InvalidOperation, ValueError):
        raise InvalidParams(f"a rate is a decimal number of whole units, not {text!r}") from None
    if value <= 0:
        raise InvalidParams("a rate is positive")
    base = value * Fraction(10**decimals_out, 10**decimals_in)
    if base.numerator >= MAX_RATE_TERM or base.denominator >= MAX_RATE_TERM:
        raise InvalidParams(f"the rate {text} is too precise or too large")
    return Rate(base.numerator, base.denominator)


def rate_in_whole_units(rate: Rate, decimals_in: int, decimals_out: int) -> str:
    """The inverse of :func:`whole_unit_rate`, as a decimal string (up to 18 places)."""
    value = Fraction(rate.numerator, rate.denominator) * Fraction(10**decimals_in, 10**decimals_out)
    whole = Decimal(value.numerator) / Decimal(value.denominator)
    text = f"{whole.quantize(Decimal(1).scaleb(-18)):f}".rstrip("0").rstrip(".")
    return text or "0"


class OperatorSettings:
    def __init__(self, ctx: NodeContext, policy: ForwardingPolicy) -> None:
        self.ctx = ctx
        self.policy = policy

    # --- fees and rates ---------------------------------------------------------------------

    def set_fee(self, asset: Asset, base: int, ppm: int) -> None:
        if base < 0 or not 0 <= ppm <= 1_000_000 or base >= 2**256:
            raise InvalidParams("a fee is base >= 0 (base units) and ppm 0 to 1,000,000")
        self.policy.fees[asset] = FeePolicy(base, ppm)
        self._record_policy()

    def set_rate(self, asset_in: Asset, asset_out: Asset, rate: Rate | None) -> None:
        """Convert ``asset_in`` into ``asset_out`` at ``rate`` from now on (``None``: stop
        converting). Quotes already issued keep their terms until they expire."""
        if asset_in == asset_out:
            raise InvalidParams("a rate converts between two different assets")
        if rate is None:
            self.policy.rates.pop((asset_in, asset_out), None)
        else:
            self.policy.rates[(asset_in, asset_out)] = rate
        self._record_policy()

    def _record_policy(self) -> None:
        record = PolicyRecord(
            fees=tuple(FeeEntry(a, f.base, f.ppm) for a, f in sorted(self.policy.fees.items())),
            rates=tuple(
                RateEntry(i, o, r.numerator, r.denominator)
                for (i, o), r in sorted(self.policy.rates.items())
            ),
        )
        self.ctx.pending.records[POLICY_KEY] = msgspec.json.encode(record)

    # --- peers ------------------------------------------------------------------------------

    def remember_peer(self, node_id: bytes, host: str, port: int) -> None:
        key = PEER_PREFIX + node_id.hex()
        self.ctx.pending.records[key] = msgspec.json.encode(PeerRecord(node_id, host, port))

    def forget_peer(self, node_id: bytes) -> None:
        self.ctx.pending.records[PEER_PREFIX + node_id.hex()] = b""

    def peers(self) -> list[PeerRecord]:
        store = self.ctx.store
        if store is None:
            return []
        decoder = msgspec.json.Decoder(PeerRecord)
        return [decoder.decode(v) for _, v in store.settings_with_prefix(PEER_PREFIX) if v]

    # --- restart ----------------------------------------------------------------------------

    def restore(self) -> None:
        """Put back the fees and rates the operator set at run time (over the config's)."""
        store = self.ctx.store
        raw = store.get_setting(POLICY_KEY) if store is not None else None
        if not raw:
            return
        record = msgspec.json.decode(raw, type=PolicyRecord)
        self.policy.fees.clear()
        self.policy.fees.update({e.asset: FeePolicy(e.base, e.ppm) for e in record.fees})
        self.policy.rates.clear()
        self.policy.rates.update(
            {(e.asset_in, e.asset_out): Rate(e.numerator, e.denominator) for e in record.rates}
        )
