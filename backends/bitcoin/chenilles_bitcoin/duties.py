"""The transactions behind each on-chain duty, built and signed but not broadcast.

Each function takes one participant's channel context and what the chain shows, and returns
a signed transaction (with the value of its inputs, so the caller can report the fee). They
raise :class:`DutyError` with a plain reason when the duty cannot be done (nothing to sweep,
unknown revocation secret, wrong preimage); consensus rules (CSV, CLTV) are left to the
kernel, so an early spend is refused by Bitcoin Core with its own reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bitcoin.core import CTransaction

from chenilles_hub.core import Htlc, SignedState

from .bolt3 import (
    Bolt3Error,
    CommitmentTx,
    DustOutputError,
    OutPoint,
    SpendableOutput,
    SpendPath,
    UnaffordableFeeError,
    build_sweep_tx,
    derive_privkey,
    derive_revocation_privkey,
    p2wsh,
    per_commitment_point,
    txid_of,
)
from .bundle import decode_bundle
from .channel_keys import ChannelSecrets
from .commitments import ChannelView
from .record import ChannelRecord
from .watch import ChainOutput, SeenCommitment, match_commitment

SpenderOf = Callable[[OutPoint], CTransaction | None]
Confirmations = Callable[[str], int | None]


class DutyError(Exception):
    """A duty that cannot be carried out; ``str(error)`` says why."""


class Immature(DutyError):
    """Outputs of ours wait for their CSV delay: the first matures in ``blocks``."""

    def __init__(self, blocks: int, delay: int) -> None:
        super().__init__(
            f"our outputs on-chain are not mature yet: the next in {blocks} "
            f"block{'s' if blocks != 1 else ''} (to_self_delay of {delay})"
        )
        self.blocks = blocks


@dataclass(frozen=True)
class Signed:
    tx: CTransaction
    input_total: int


@dataclass
class ChannelContext:
    """One participant's view of one channel: keys, secrets and what it remembers."""

    view: ChannelView
    secrets: ChannelSecrets
    me: int
    record: ChannelRecord

    @property
    def peer(self) -> int:
        return 1 - self.me

    def peer_point(self, version: int) -> bytes | None:
        secret = self.record.revocation_secret(version)
        if secret is not None:
            return per_commitment_point(secret)
        return self.record.peer_points.get(version)

    def htlcs_at(self, version: int) -> tuple[Htlc, ...]:
        registered = self.record.registered
        if registered is not None and registered.version == version:
            return registered.state.htlcs
        return self.record.htlcs.get(version, ())

    def read_commitment(self, tx: CTransaction, version: int) -> SeenCommitment | None:
        """Whose commitment ``tx`` is, with every output identified; ``None`` if unknown."""
        htlcs = self.htlcs_at(version)
        mine = match_commitment(
            self.view, tx, self.me, self.secrets.commitment_point(version), htlcs
        )
        if mine is not None:
            return mine
        point = self.peer_point(version)
        if point is None:
            return None
        return match_commitment(self.view, tx, self.peer, point, htlcs)

    def my_commitment(self, signed: SignedState) -> CommitmentTx:
        point = self.secrets.commitment_point(signed.version)
        return self.view.commitment(self.me, signed.state, point)


def _sweep(
    inputs: list[SpendableOutput], dest: bytes, ctx: ChannelContext, lock: int = 0
) -> Signed:
    """A transaction only we sign (penalty, sweep, HTLC spend), at the raised feerate where
    it can pay, else at the channel's (``ChannelView.sweep_fees``): the choice depends on
    the inputs and the policies only, so the same call builds the same transaction."""
    *first, last = ctx.view.sweep_fees()
    for feerate, max_fee in first:  # the raised rate, where it can pay
        try:
            tx = _build_sweep(inputs, dest, ctx, lock, feerate, max_fee)
        except (Bolt3Error, ValueError):
            continue
        return Signed(tx, sum(i.amount_sat for i in inputs))
    try:
        tx = _build_sweep(inputs, dest, ctx, lock, *last)
    except (Bolt3Error, ValueError) as exc:
        raise DutyError(str(exc)) from exc
    return Signed(tx, sum(i.amount_sat for i in inputs))


def _build_sweep(
    inputs: list[SpendableOutput],
    dest: bytes,
    ctx: ChannelContext,
    lock: int,
    feerate: int,
    max_fee: int,
) -> CTransaction:
    return build_sweep_tx(
        inputs,
        dest,
        feerate,
        locktime=lock,
        dust_limit_sat=ctx.view.policy.dust_limit_sat,
        max_fee_sat=max_fee,
    )


# --- closing and registering ------------------------------------------------------------


def signed_commitment(ctx: ChannelContext, signed: SignedState) -> Signed:
    """Our commitment for ``signed``, with both funding signatures (unilateral close)."""
    peer_bundle = signed.signatures[ctx.peer]
    if not peer_bundle:
        raise DutyError(f"version {signed.version} lacks the peer's signature")
    commitment = ctx.my_commitment(signed)
    try:
        remote = decode_bundle(peer_bundle).commitment_sig
        tx = commitment.finalize(commitment.sign(ctx.secrets.funding_secret), remote)
    except (Bolt3Error, ValueError) as exc:
        raise DutyError(f"cannot sign commitment {signed.version}: {exc}") from exc
    return Signed(tx, commitment.funding_amount_sat)


def signed_closing(ctx: ChannelContext, signed: SignedState) -> Signed:
    """The cooperative closing transaction of a final state, with both bundles' signatures."""
    if not signed.state.final or not signed.complete:
        raise DutyError("a cooperative close needs a final state signed by both participants")
    closing = ctx.view.closing(signed.state)
    try:
        sigs = [decode_bundle(b).closing_sig for b in signed.signatures]
        tx = closing.finalize(sigs[0], sigs[1])
    except (Bolt3Error, ValueError) as exc:
        raise DutyError(f"closing signatures do not verify: {exc}") from exc
    return Signed(tx, closing.funding_amount_sat)


# --- the dispute ------------------------------------------------------------------------


def _second_stage_script(ctx: ChannelContext, seen: SeenCommitment) -> bytes:
    """HTLC-success/timeout outputs use the commitment's own to_local script."""
    return ctx.view.to_local_script(seen.owner, seen.point)


def penalty(
    ctx: ChannelContext, seen: SeenCommitment, spender_of: SpenderOf, dest: bytes
) -> Signed:
    """Justice transaction taking every output of the peer's revoked commitment."""
    secret = ctx.record.revocation_secret(seen.version)
    if secret is None:
        raise DutyError(
            f"unknown revocation secret: version {seen.version} was never revoked by the peer"
        )
    revocation_key = derive_revocation_privkey(ctx.secrets.revocation_secret, secret)
    second_ws = _second_stage_script(ctx, seen)
    inputs: list[SpendableOutput] = []
    for out in seen.outputs:
        spender = spender_of(out.outpoint)
        if out.kind == "to_remote":
            if spender is None:
                inputs.append(
                    SpendableOutput(
                        out.outpoint, out.amount, SpendPath.P2WPKH, ctx.secrets.payment_secret
                    )
                )
        elif spender is None:
            path = SpendPath.REVOCATION if out.kind == "to_local" else SpendPath.HTLC_REVOCATION
            inputs.append(
                SpendableOutput(out.outpoint, out.amount, path, revocation_key, out.witness_script)
            )
        elif out.kind == "htlc" and bytes(spender.vout[0].scriptPubKey) == bytes(p2wsh(second_ws)):
            second = OutPoint(txid_of(spender), 0)
            if spender_of(second) is None:
                inputs.append(
                    SpendableOutput(
                        second,
                        int(spender.vout[0].nValue),
                        SpendPath.REVOCATION,
                        revocation_key,
                        second_ws,
                    )
                )
    if not inputs:
        raise DutyError("every output of the revoked commitment is already spent")
    return _sweep(inputs, dest, ctx)


def delayed_sweep(
    ctx: ChannelContext,
    seen: SeenCommitment,
    spender_of: SpenderOf,
    confirmations: Confirmations,
    dest: bytes,
) -> Signed | None:
    """Sweep our to_local and second-stage HTLC outputs once ``to_self_delay`` has passed.

    Only mature outputs are taken; when some are left and none is mature, ``Immature``
    says when the next one is (nothing is sent that the chain would refuse). An output too
    small to pay for its own sweep is left. ``None`` when nothing is left to sweep.
    """
    delay = ctx.view.to_self_delay
    key = derive_privkey(ctx.secrets.delayed_payment_secret, seen.point)
    ws = _second_stage_script(ctx, seen)
    candidates: list[tuple[SpendableOutput, int]] = []
    local = seen.output("to_local")
    if local is not None and spender_of(local.outpoint) is None:
        candidates.append(
            (
                SpendableOutput(
                    local.outpoint,
                    local.amount,
                    SpendPath.TO_LOCAL_DELAYED,
                    key,
                    ws,
                    sequence=delay,
                ),
                confirmations(seen.txid) or 0,
            )
        )
    for out in seen.outputs:
        if out.kind != "htlc":
            continue
        spender = spender_of(out.outpoint)
        if spender is None or bytes(spender.vout[0].scriptPubKey) != bytes(p2wsh(ws)):
            continue
        second = OutPoint(txid_of(spender), 0)
        if spender_of(second) is None:
            spendable = SpendableOutput(
                second,
                int(spender.vout[0].nValue),
                SpendPath.TO_LOCAL_DELAYED,
                key,
                ws,
                sequence=delay,
            )
            candidates.append((spendable, confirmations(second.txid) or 0))
    if candidates and all(depth < delay for _, depth in candidates):
        raise Immature(delay - max(depth for _, depth in candidates), delay)
    chosen = sorted((c for c, depth in candidates if depth >= delay), key=lambda c: c.amount_sat)
    while chosen:
        try:
            return _sweep(chosen, dest, ctx)
        except DutyError as exc:
            if not isinstance(exc.__cause__, DustOutputError | UnaffordableFeeError):
                raise
            # The smallest cannot pay for its own sweep: worth nothing to anyone but the
            # miners (as a trimmed HTLC), it is left, so the dispute can end.
            chosen = chosen[1:]
    return None


def payout_sweep(
    ctx: ChannelContext, tx: CTransaction, spender_of: SpenderOf, dest: bytes
) -> Signed | None:
    """Move our closing output or to_remote (paid to our payment basepoint) into the wallet."""
    spk = ctx.view.payout_spk(ctx.me)
    txid = txid_of(tx)
    inputs = [
        SpendableOutput(
            OutPoint(txid, i), int(out.nValue), SpendPath.P2WPKH, ctx.secrets.payment_secret
        )
        for i, out in enumerate(tx.vout)
        if bytes(out.scriptPubKey) == spk and spender_of(OutPoint(txid, i)) is None
    ]
    return _sweep(inputs, dest, ctx) if inputs else None


# --- HTLCs ------------------------------------------------------------------------------


def _same_contract(a: Htlc, b: Htlc) -> bool:
    """One payment offered in two attempts at one version under two ids: one script, one
    amount, so one output (``match_commitment`` names it after either)."""
    return (a.payer, a.payment_hash, a.native_expiry, a.amount) == (
        b.payer,
        b.payment_hash,
        b.native_expiry,
        b.amount,
    )


def htlc_outpoint(seen: SeenCommitment, htlc: Htlc) -> OutPoint | None:
    """The output of ``htlc`` in the commitment on-chain, or ``None`` if it has none (one
    trimmed as dust: its value went to the fee)."""
    try:
        return _htlc_output(seen, htlc).outpoint
    except DutyError:
        return None


def _htlc_output(seen: SeenCommitment, htlc: Htlc) -> ChainOutput:
    out = seen.output("htlc", htlc.id)
    if out is None:
        out = next(
            (
                o
                for o in seen.outputs
                if o.kind == "htlc" and o.htlc and _same_contract(o.htlc, htlc)
            ),
            None,
        )
    if out is None:
        raise DutyError(
            f"HTLC {htlc.id} has no output in commitment {seen.version} (trimmed as dust or absent)"
        )
    return out


def second_stage(
    ctx: ChannelContext, seen: SeenCommitment, htlc: Htlc, preimage: bytes | None
) -> Signed:
    """HTLC-success (with ``preimage``) or HTLC-timeout on our own commitment on-chain."""
    signed = ctx.record.registered
    if signed is None or signed.version != seen.version:
        raise DutyError(f"our signed state {seen.version} is not known: register it first")
    commitment = ctx.my_commitment(signed)
    peer_sigs = decode_bundle(signed.signatures[ctx.peer]).htlc_sigs
    outpoint = _htlc_output(seen, htlc).outpoint
    for position, index in enumerate(commitment.htlc_output_indexes()):
        if index != outpoint.index:
            continue
        htlc_tx = commitment.htlc_txs()[position]
        local_key = derive_privkey(ctx.secrets.htlc_secret, seen.point)
        try:
            tx = htlc_tx.finalize(peer_sigs[position], htlc_tx.sign(local_key), preimage)
        except (Bolt3Error, ValueError) as exc:
            raise DutyError(str(exc)) from exc
        return Signed(tx, htlc_tx.input_amount_sat)
    raise DutyError(f"HTLC {htlc.id} is not an HTLC output of our commitment")


def direct_htlc_spend(
    ctx: ChannelContext, seen: SeenCommitment, htlc: Htlc, preimage: bytes | None, dest: bytes
) -> Signed:
    """Claim (preimage) or time out (after cltv_expiry) an HTLC on the peer's commitment."""
    out = _htlc_output(seen, htlc)
    outpoint = out.outpoint
    assert out.witness_script is not None
    key = derive_privkey(ctx.secrets.htlc_secret, seen.point)
    if preimage is not None:
        spend = SpendableOutput(
            outpoint, out.amount, SpendPath.OFFERED_HTLC_PREIMAGE, key, out.witness_script, preimage
        )
        return _sweep([spend], dest, ctx)
    spend = SpendableOutput(
        outpoint, out.amount, SpendPath.RECEIVED_HTLC_TIMEOUT, key, out.witness_script
    )
    return _sweep([spend], dest, ctx, lock=htlc.native_expiry)


__all__ = [
    "ChannelContext",
    "DutyError",
    "Immature",
    "Signed",
    "delayed_sweep",
    "direct_htlc_spend",
    "htlc_outpoint",
    "payout_sweep",
    "penalty",
    "second_stage",
    "signed_closing",
    "signed_commitment",
]
