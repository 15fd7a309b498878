"""What a chain demands of a state before its on-chain form can be mined: dust, reserve, fees.

A backend declares these rules per asset (``ChainBackend.channel_rules``); the core checks
every proposed and accepted state against them (``invariants.check_rules``) before anything
is signed. Without them a state can be signed whose enforcement transaction the chain will
never accept: a Bitcoin commitment whose every amount went to fees, dust or trimmed HTLCs
has no output at all, which no block may contain (issue 12, item 8).

The shape follows BOLT 2 and 3, in chain-neutral words:

* ``dust_limit``: the smallest output the chain relays; a balance below it gets no output
  in the enforcement transaction (its value goes to fees);
* the reserve: what each participant must keep in the channel once it has it (BOLT 2's
  ``channel_reserve``: 1% of the channel, at least the dust limit), so that publishing an
  old state always costs the cheater something and the enforcement transaction always has
  an output;
* the commitment fee: paid out of one participant's balance (BOLT 3: the funder) and
  growing with the HTLCs that get their own output; an HTLC smaller than its trim threshold
  (the dust limit plus its second-stage fee) gets none;
* the dust exposure: an HTLC without an output is not enforceable, its value goes to fees
  if that transaction is mined, so what such HTLCs add up to is capped (``max_trimmed``,
  Lightning's ``max_dust_htlc_exposure``): a hub that forwarded one whose peer then closed
  on-chain has paid downstream what it cannot claim upstream.

A chain with no such costs (EVM, Solana: fees are paid by whoever sends a transaction, from
outside the channel) declares no asset rules, and nothing of that is checked.

A ledger may also hold fewer HTLCs per state than the core's ``MAX_HTLCS`` (Solana: one
register transaction must carry the whole state): ``ChannelRules.max_htlcs``. The core then
refuses to add an HTLC past it, where the node's queue makes an offer wait for a slot, instead
of the backend refusing to sign after the update had been taken from the queue.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from .model import MAX_HTLCS, Asset, ChannelState

NonNegative = Annotated[int, msgspec.Meta(ge=0)]
PPM = 1_000_000


class AssetRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The rules of one asset of a channel (amounts in the asset's base unit).

    ``fee_payer`` pays ``(fee_base + fee_per_htlc * n) // fee_divisor`` per enforcement
    transaction, ``n`` the HTLCs with an output in it (``fee_divisor`` lets a backend state
    a fee rate exactly, e.g. Bitcoin's sat per 1000 weight units). An HTLC gets an output
    in its payer's transaction from ``htlc_trim[0]`` up, in its payee's from
    ``htlc_trim[1]`` up (the second-stage fees differ on Bitcoin). ``max_trimmed``: the
    most the HTLCs without an output in some enforcement transaction may add up to
    (``None``: no cap), a node's own choice, not one both sides must share.
    """

    asset: Asset
    dust_limit: NonNegative = 0
    reserve_ppm: Annotated[int, msgspec.Meta(ge=0, le=PPM)] = 0
    reserve_min: NonNegative = 0
    fee_payer: Annotated[int, msgspec.Meta(ge=0, le=1)] | None = None
    fee_base: NonNegative = 0
    fee_per_htlc: NonNegative = 0
    fee_divisor: Annotated[int, msgspec.Meta(ge=1)] = 1
    htlc_trim: tuple[NonNegative, NonNegative] = (0, 0)
    max_trimmed: NonNegative | None = None

    def reserve(self, total: int) -> int:
        """The reserve in a channel holding ``total``: ``reserve_ppm`` of it (rounded up),
        at least ``reserve_min``. The total never changes (conservation), nor does this."""
        return max(self.reserve_min, -(-total * self.reserve_ppm // PPM))

    def outputs_htlcs(self, state: ChannelState, owner: int) -> int:
        """HTLCs of this asset with an output in ``owner``'s enforcement transaction."""
        return sum(
            1
            for h in state.htlcs
            if h.asset == self.asset and h.amount >= self.htlc_trim[0 if h.payer == owner else 1]
        )

    def trimmed(self, state: ChannelState) -> int:
        """What this asset's HTLCs without an output in one participant's enforcement
        transaction or the other's add up to: whichever is mined, they go to fees."""
        threshold = max(self.htlc_trim)
        if not state.htlcs or threshold == 0:
            return 0
        return sum(h.amount for h in state.htlcs if h.asset == self.asset and h.amount < threshold)

    def fee(self, state: ChannelState, owner: int) -> int:
        """The fee of ``owner``'s enforcement transaction of ``state``."""
        if self.fee_payer is None:
            return 0
        n = self.outputs_htlcs(state, owner)
        return (self.fee_base + self.fee_per_htlc * n) // self.fee_divisor


class ChannelRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A backend's rules for one channel; an asset without an entry has none.

    ``max_htlcs``: the most HTLCs one state of this channel may lock on its ledger, at most
    the core's ``MAX_HTLCS``."""

    assets: tuple[AssetRules, ...] = ()
    max_htlcs: Annotated[int, msgspec.Meta(ge=0, le=MAX_HTLCS)] = MAX_HTLCS

    def of(self, asset: Asset) -> AssetRules | None:
        for rules in self.assets:
            if rules.asset == asset:
                return rules
        return None


NO_RULES = ChannelRules()
