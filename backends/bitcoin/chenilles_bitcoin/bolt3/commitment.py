"""Commitment transactions and second-stage HTLC transactions (BOLT 3, legacy format).

A commitment transaction is always described from its owner's side ("local"):
its ``to_local`` and HTLC-success/timeout outputs are delayed by
``to_self_delay`` so the counterparty can punish a revoked commitment.  The
builder follows "Commitment Transaction Construction" step by step: trim HTLCs,
compute the base fee from the expected weight (724 + 172 per untrimmed HTLC),
take it from the funder, drop dust, sort per BIP 69 with the CLTV tiebreak.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

from bitcoin.core import (
    CMutableTransaction,
    CMutableTxIn,
    CMutableTxOut,
    COutPoint,
    CTransaction,
    lx,
)
from bitcoin.core.script import CScript

from . import keys as _keys
from .errors import (
    Bolt3Error,
    DustOutputError,
    FeeTooHighError,
    InvalidPreimageError,
    NoOutputError,
    UnaffordableFeeError,
)
from .funding_spend import FundingSpend
from .scripts import (
    check_preimage,
    htlc_success_witness,
    htlc_timeout_witness,
    offered_htlc_script,
    p2wsh,
    received_htlc_script,
    to_local_script,
    to_remote_script,
)
from .signing import check_digest_signature, sign_digest, with_sighash
from .txutil import TX_VERSION, OutPoint, SingleInput, set_witness

#: Expected weights from BOLT 3 "Fee Calculation" (73-byte signatures assumed).
COMMITMENT_BASE_WEIGHT = 724
COMMITMENT_WEIGHT_PER_HTLC = 172
HTLC_TIMEOUT_WEIGHT = 663
HTLC_SUCCESS_WEIGHT = 703

_OBSCURE_MASK = (1 << 48) - 1


class OutputKind(StrEnum):
    """What a commitment output pays, from the commitment owner's view."""

    TO_LOCAL = "to_local"
    TO_REMOTE = "to_remote"
    OFFERED_HTLC = "offered_htlc"
    RECEIVED_HTLC = "received_htlc"


@dataclass(frozen=True)
class Htlc:
    """An HTLC as seen by the commitment owner.

    ``offered`` is True for HTLCs the owner offered (local->remote: resolved by
    HTLC-timeout), False for HTLCs it received (remote->local: HTLC-success).
    """

    offered: bool
    amount_msat: int
    payment_hash: bytes
    cltv_expiry: int
    htlc_id: int = 0

    @property
    def amount_sat(self) -> int:
        return self.amount_msat // 1000


class CommitmentKeys:
    """The five keys of one commitment, from its owner's side (BOLT 3 "Keys").

    Immutable and compared by value, like a frozen dataclass. The two HTLC keys of a
    set from :meth:`derive` are derived on first use: only a commitment with an untrimmed HTLC
    output (or its HTLC transactions, or a sweep of them) needs them, and most commitments
    of a channel, the one after a payment settles for a start, carry none. That saves two
    of the five curve operations of such a commitment, on each side, for each of its two
    commitments of every state.
    """

    __slots__ = ("_htlc", "local_delayed_pubkey", "remote_pubkey", "revocation_pubkey")

    revocation_pubkey: bytes
    local_delayed_pubkey: bytes
    remote_pubkey: bytes
    #: ``(local_htlc_pubkey, remote_htlc_pubkey)``, or what derives them.
    _htlc: tuple[bytes, bytes] | Callable[[], tuple[bytes, bytes]]

    def __init__(
        self,
        revocation_pubkey: bytes,
        local_delayed_pubkey: bytes,
        local_htlc_pubkey: bytes,
        remote_htlc_pubkey: bytes,
        remote_pubkey: bytes,
    ) -> None:
        self._set(
            revocation_pubkey,
            local_delayed_pubkey,
            (local_htlc_pubkey, remote_htlc_pubkey),
            remote_pubkey,
        )

    def _set(
        self,
        revocation_pubkey: bytes,
        local_delayed_pubkey: bytes,
        htlc: tuple[bytes, bytes] | Callable[[], tuple[bytes, bytes]],
        remote_pubkey: bytes,
    ) -> None:
        put = object.__setattr__
        put(self, "revocation_pubkey", revocation_pubkey)
        put(self, "local_delayed_pubkey", local_delayed_pubkey)
        put(self, "_htlc", htlc)
        put(self, "remote_pubkey", remote_pubkey)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"CommitmentKeys is immutable: cannot set {name!r}")

    def _htlc_keys(self) -> tuple[bytes, bytes]:
        htlc = self._htlc
        if callable(htlc):
            htlc = htlc()  # raises InvalidKeyError as the eager derivation would
            object.__setattr__(self, "_htlc", htlc)
        return htlc

    @property
    def local_htlc_pubkey(self) -> bytes:
        return self._htlc_keys()[0]

    @property
    def remote_htlc_pubkey(self) -> bytes:
        return self._htlc_keys()[1]

    def _fields(self) -> tuple[bytes, bytes, bytes, bytes, bytes]:
        local_htlc, remote_htlc = self._htlc_keys()
        return (
            self.revocation_pubkey,
            self.local_delayed_pubkey,
            local_htlc,
            remote_htlc,
            self.remote_pubkey,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CommitmentKeys):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __reduce__(self) -> tuple[type[CommitmentKeys], tuple[bytes, ...]]:
        return CommitmentKeys, self._fields()  # copy and pickle: the five keys

    def __repr__(self) -> str:
        names = (
            "revocation_pubkey",
            "local_delayed_pubkey",
            "local_htlc_pubkey",
            "remote_htlc_pubkey",
            "remote_pubkey",
        )
        fields = ", ".join(f"{n}={v.hex()}" for n, v in zip(names, self._fields(), strict=True))
        return f"CommitmentKeys({fields})"

    @classmethod
    def derive(
        cls,
        per_commitment_point: bytes,
        *,
        local_delayed_payment_basepoint: bytes,
        local_htlc_basepoint: bytes,
        remote_htlc_basepoint: bytes,
        remote_revocation_basepoint: bytes,
        remote_payment_basepoint: bytes,
        static_remotekey: bool = False,
        secrets: KeySecrets | None = None,
    ) -> CommitmentKeys:
        """Derive the keys of the commitment owned by the holder of ``per_commitment_point``.

        With ``static_remotekey`` the ``to_remote`` key is the remote payment basepoint
        itself (option_static_remotekey); otherwise it is tweaked like the others.
        ``secrets`` are whichever secrets behind these points the caller holds: the keys
        are the same, computed with cheaper (fixed-base) multiplications. The HTLC keys
        are derived when first read.
        """
        s = secrets or KeySecrets()
        d = _keys.derive_pubkey
        # Parsed now (and remembered), so that a basepoint the curve refuses fails here,
        # not at first use. What is left to fail later is a tweak that lands on the point
        # at infinity (probability ~2**-128), and that at the same call when HTLCs are built.
        _keys.check_point(local_htlc_basepoint)
        _keys.check_point(remote_htlc_basepoint)

        def htlc_keys() -> tuple[bytes, bytes]:
            return (
                d(local_htlc_basepoint, per_commitment_point, s.local_htlc_basepoint_secret),
                d(remote_htlc_basepoint, per_commitment_point, s.remote_htlc_basepoint_secret),
            )

        keys = cls.__new__(cls)
        keys._set(
            _keys.derive_revocation_pubkey(
                remote_revocation_basepoint,
                per_commitment_point,
                revocation_basepoint_secret=s.remote_revocation_basepoint_secret,
                per_commitment_secret=s.per_commitment_secret,
            ),
            d(
                local_delayed_payment_basepoint,
                per_commitment_point,
                s.local_delayed_payment_basepoint_secret,
            ),
            htlc_keys,
            (
                remote_payment_basepoint
                if static_remotekey
                else d(remote_payment_basepoint, per_commitment_point)
            ),
        )
        return keys


@dataclass(frozen=True)
class KeySecrets:
    """Secrets a participant holds behind the points of one commitment (each optional).

    The commitment's owner knows its per-commitment secret and its own delayed-payment and
    HTLC basepoint secrets; the other side knows its revocation and HTLC basepoint secrets.
    """

    per_commitment_secret: bytes | None = None
    local_delayed_payment_basepoint_secret: bytes | None = None
    local_htlc_basepoint_secret: bytes | None = None
    remote_htlc_basepoint_secret: bytes | None = None
    remote_revocation_basepoint_secret: bytes | None = None


# --- fees and trimming ---------------------------------------------------------------


def commitment_weight(num_untrimmed_htlcs: int) -> int:
    """Expected commitment weight: 724 + 172 per untrimmed HTLC output."""
    return COMMITMENT_BASE_WEIGHT + COMMITMENT_WEIGHT_PER_HTLC * num_untrimmed_htlcs


def commitment_fee(feerate_per_kw: int, num_untrimmed_htlcs: int) -> int:
    """Base commitment fee in satoshis (rounded down)."""
    return feerate_per_kw * commitment_weight(num_untrimmed_htlcs) // 1000


def htlc_timeout_fee(feerate_per_kw: int) -> int:
    """HTLC-timeout fee: feerate * 663 / 1000, rounded down."""
    return feerate_per_kw * HTLC_TIMEOUT_WEIGHT // 1000


def htlc_success_fee(feerate_per_kw: int) -> int:
    """HTLC-success fee: feerate * 703 / 1000, rounded down."""
    return feerate_per_kw * HTLC_SUCCESS_WEIGHT // 1000


def htlc_tx_fee(htlc: Htlc, feerate_per_kw: int) -> int:
    """Fee of the second-stage transaction that resolves ``htlc`` on its owner's side."""
    return htlc_timeout_fee(feerate_per_kw) if htlc.offered else htlc_success_fee(feerate_per_kw)


def is_trimmed(htlc: Htlc, feerate_per_kw: int, dust_limit_sat: int) -> bool:
    """True if the HTLC output is not produced: its second stage would be dust."""
    return htlc.amount_sat < dust_limit_sat + htlc_tx_fee(htlc, feerate_per_kw)


def obscuring_factor(opener_payment_basepoint: bytes, accepter_payment_basepoint: bytes) -> int:
    """Lower 48 bits of SHA256(opener payment_basepoint || accepter payment_basepoint)."""
    digest = hashlib.sha256(opener_payment_basepoint + accepter_payment_basepoint).digest()
    return int.from_bytes(digest[-6:], "big")


def encode_commitment_number(commitment_number: int, factor: int) -> tuple[int, int]:
    """(nLockTime, nSequence) carrying the obscured 48-bit commitment number."""
    if not 0 <= commitment_number <= _OBSCURE_MASK:
        raise ValueError("commitment number must fit in 48 bits")
    obscured = (commitment_number ^ factor) & _OBSCURE_MASK
    locktime = (0x20 << 24) | (obscured & 0xFFFFFF)
    sequence = (0x80 << 24) | (obscured >> 24)
    return locktime, sequence


def decode_commitment_number(locktime: int, sequence: int, factor: int) -> int:
    """Recover the commitment number of a commitment seen on chain (watchers need it)."""
    if locktime >> 24 != 0x20 or sequence >> 24 != 0x80:
        raise Bolt3Error("not a BOLT 3 commitment transaction")
    obscured = ((sequence & 0xFFFFFF) << 24) | (locktime & 0xFFFFFF)
    return obscured ^ (factor & _OBSCURE_MASK)


# --- commitment transaction ----------------------------------------------------------


@dataclass(frozen=True)
class CommitmentOutput:
    """One output of a commitment, with what is needed to spend it later."""

    kind: OutputKind
    amount_sat: int
    script_pubkey: bytes
    witness_script: bytes | None  # None for the P2WPKH to_remote
    htlc: Htlc | None = None

    def sort_key(self) -> tuple[int, bytes, int]:
        """BIP 69 (amount, scriptPubKey) with the BOLT 3 tiebreak on cltv_expiry."""
        return (self.amount_sat, self.script_pubkey, self.htlc.cltv_expiry if self.htlc else 0)


@dataclass
class CommitmentTx(FundingSpend):
    """An unsigned commitment transaction and everything needed to sign and spend it.

    Its ``tx`` (python-bitcoinlib) is built on first use, from ``outputs``, the funding
    outpoint, ``sequence`` and ``locktime``: signing and verifying a state need only the
    txid and the funding digest, hashed from the same fields (:class:`SingleInput`). As
    every built transaction here, it is immutable once built.
    """

    outputs: list[CommitmentOutput]
    funding_outpoint: OutPoint
    funding_amount_sat: int
    local_funding_pubkey: bytes
    remote_funding_pubkey: bytes
    commitment_number: int
    feerate_per_kw: int
    dust_limit_sat: int
    to_self_delay: int
    keys: CommitmentKeys
    base_fee_sat: int
    sequence: int
    locktime: int
    trimmed_htlcs: list[Htlc] = field(default_factory=list)

    @cached_property
    def tx(self) -> CMutableTransaction:
        return CMutableTransaction(
            [CMutableTxIn(self.funding_outpoint.to_core(), nSequence=self.sequence)],
            [CMutableTxOut(o.amount_sat, CScript(o.script_pubkey)) for o in self.outputs],
            nLockTime=self.locktime,
            nVersion=TX_VERSION,
        )

    @cached_property
    def _single_input(self) -> SingleInput:
        return SingleInput(
            self.funding_outpoint.txid,
            self.funding_outpoint.index,
            self.sequence,
            [(o.amount_sat, o.script_pubkey) for o in self.outputs],
            self.locktime,
        )

    @cached_property
    def txid(self) -> str:
        return self._single_input.txid()

    @cached_property
    def funding_digest(self) -> bytes:
        """The BIP 143 digest both funding keys sign (input 0, SIGHASH_ALL)."""
        return self._single_input.digest(self.funding_script, self.funding_amount_sat)

    @property
    def actual_fee_sat(self) -> int:
        """Funding amount minus outputs: base fee plus trimmed amounts and rounding."""
        return self.funding_amount_sat - sum(o.amount_sat for o in self.outputs)

    def htlc_output_indexes(self) -> list[int]:
        """Indexes of HTLC outputs, in transaction order (the order of HTLC signatures)."""
        return [i for i, o in enumerate(self.outputs) if o.htlc is not None]

    @cached_property
    def second_stage_script(self) -> bytes:
        """The to_local-style witness script every HTLC-success/timeout output pays."""
        return bytes(
            to_local_script(
                self.keys.revocation_pubkey, self.to_self_delay, self.keys.local_delayed_pubkey
            )
        )

    @cached_property
    def second_stage_spk(self) -> bytes:
        """P2WSH of :attr:`second_stage_script` (the same for every HTLC tx of a commitment)."""
        return bytes(p2wsh(self.second_stage_script))

    def htlc_txs(self) -> list[HtlcTx]:
        """Second-stage HTLC transactions, in commitment output order."""
        return [build_htlc_tx(self, i) for i in self.htlc_output_indexes()]


def build_commitment_tx(
    *,
    funding_outpoint: OutPoint,
    funding_amount_sat: int,
    local_funding_pubkey: bytes,
    remote_funding_pubkey: bytes,
    commitment_number: int,
    obscuring_factor: int,
    to_local_msat: int,
    to_remote_msat: int,
    local_is_funder: bool,
    feerate_per_kw: int,
    dust_limit_sat: int,
    to_self_delay: int,
    keys: CommitmentKeys,
    htlcs: Sequence[Htlc] = (),
    max_fee_sat: int | None = None,
    require_affordable: bool = False,
) -> CommitmentTx:
    """Build the owner's commitment transaction (unsigned), per BOLT 3.

    The spec lets the funder's output shrink to zero when the fee exceeds it (the
    "fee greater than funder amount" vector); a channel proposing such a state
    should refuse it, so ``require_affordable`` raises :class:`UnaffordableFeeError`
    instead, and ``max_fee_sat`` raises :class:`FeeTooHighError` above a cap.
    """
    if min(to_local_msat, to_remote_msat, feerate_per_kw, dust_limit_sat) < 0:
        raise ValueError("amounts, feerate and dust limit must not be negative")
    # One pass over the HTLCs: positivity, the total, and trimming (``is_trimmed`` inlined:
    # the second-stage fee depends only on the direction).
    timeout_floor = dust_limit_sat + htlc_timeout_fee(feerate_per_kw)
    success_floor = dust_limit_sat + htlc_success_fee(feerate_per_kw)
    untrimmed: list[Htlc] = []
    trimmed: list[Htlc] = []
    total_msat = to_local_msat + to_remote_msat
    for h in htlcs:
        if h.amount_msat <= 0:
            raise ValueError("HTLC amounts must be positive")
        total_msat += h.amount_msat
        floor = timeout_floor if h.offered else success_floor
        (trimmed if h.amount_msat // 1000 < floor else untrimmed).append(h)
    if total_msat > funding_amount_sat * 1000:
        raise ValueError(
            f"balances and HTLCs ({total_msat} msat) exceed the funding amount "
            f"({funding_amount_sat} sat)"
        )

    base_fee = commitment_fee(feerate_per_kw, len(untrimmed))
    if max_fee_sat is not None and base_fee > max_fee_sat:
        raise FeeTooHighError(f"commitment fee {base_fee} sat exceeds the limit {max_fee_sat} sat")

    funder_msat = to_local_msat if local_is_funder else to_remote_msat
    if require_affordable and funder_msat < base_fee * 1000:
        raise UnaffordableFeeError(
            f"funder has {funder_msat // 1000} sat, commitment fee is {base_fee} sat"
        )
    if local_is_funder:
        to_local_msat = max(0, to_local_msat - base_fee * 1000)
    else:
        to_remote_msat = max(0, to_remote_msat - base_fee * 1000)

    outputs: list[CommitmentOutput] = []
    for h in untrimmed:
        if h.offered:
            ws = offered_htlc_script(
                keys.revocation_pubkey,
                keys.local_htlc_pubkey,
                keys.remote_htlc_pubkey,
                h.payment_hash,
            )
            kind = OutputKind.OFFERED_HTLC
        else:
            ws = received_htlc_script(
                keys.revocation_pubkey,
                keys.local_htlc_pubkey,
                keys.remote_htlc_pubkey,
                h.payment_hash,
                h.cltv_expiry,
            )
            kind = OutputKind.RECEIVED_HTLC
        outputs.append(CommitmentOutput(kind, h.amount_sat, bytes(p2wsh(ws)), bytes(ws), h))
    # The to_local script is also every second-stage output's: kept for the HTLC txs.
    to_local: CommitmentOutput | None = None
    if to_local_msat // 1000 >= dust_limit_sat:
        ws = to_local_script(keys.revocation_pubkey, to_self_delay, keys.local_delayed_pubkey)
        to_local = CommitmentOutput(
            OutputKind.TO_LOCAL, to_local_msat // 1000, bytes(p2wsh(ws)), bytes(ws)
        )
        outputs.append(to_local)
    if to_remote_msat // 1000 >= dust_limit_sat:
        spk = bytes(to_remote_script(keys.remote_pubkey))
        outputs.append(CommitmentOutput(OutputKind.TO_REMOTE, to_remote_msat // 1000, spk, None))
    if not outputs:
        raise NoOutputError(
            f"commitment {commitment_number}: every amount is fees, dust or a trimmed HTLC "
            f"(base fee {base_fee} sat, dust limit {dust_limit_sat} sat)"
        )
    outputs.sort(key=CommitmentOutput.sort_key)

    locktime, sequence = encode_commitment_number(commitment_number, obscuring_factor)
    commitment = CommitmentTx(
        outputs=outputs,
        funding_outpoint=funding_outpoint,
        funding_amount_sat=funding_amount_sat,
        local_funding_pubkey=local_funding_pubkey,
        remote_funding_pubkey=remote_funding_pubkey,
        commitment_number=commitment_number,
        feerate_per_kw=feerate_per_kw,
        dust_limit_sat=dust_limit_sat,
        to_self_delay=to_self_delay,
        keys=keys,
        base_fee_sat=base_fee,
        sequence=sequence,
        locktime=locktime,
        trimmed_htlcs=trimmed,
    )
    if to_local is not None:
        # The same ``to_local_script`` of the same keys and delay: what the cached
        # properties would compute (their values are set as ``cached_property`` stores them).
        commitment.__dict__["second_stage_script"] = to_local.witness_script
        commitment.__dict__["second_stage_spk"] = to_local.script_pubkey
    return commitment


# --- HTLC-success / HTLC-timeout -----------------------------------------------------


@dataclass
class HtlcTx:
    """An unsigned second-stage HTLC transaction spending one commitment HTLC output.

    Like :class:`CommitmentTx`, its ``tx`` is built on first use from the fields; the txid
    and the digest are hashed from them (:class:`SingleInput`).
    """

    htlc: Htlc
    input_witness_script: bytes  # the commitment's HTLC script
    input_amount_sat: int
    output_witness_script: bytes  # to_local-style script, revocable, CSV-delayed
    keys: CommitmentKeys
    to_self_delay: int
    commitment_txid: str
    output_index: int  # of the HTLC output in the commitment (the spent outpoint)
    output_amount_sat: int
    output_script_pubkey: bytes  # P2WSH of ``output_witness_script``

    @property
    def is_timeout(self) -> bool:
        return self.htlc.offered

    @property
    def locktime(self) -> int:
        """The HTLC's CLTV expiry for an HTLC-timeout, 0 for an HTLC-success."""
        return self.htlc.cltv_expiry if self.htlc.offered else 0

    @cached_property
    def tx(self) -> CMutableTransaction:
        return CMutableTransaction(
            [CMutableTxIn(COutPoint(lx(self.commitment_txid), self.output_index), nSequence=0)],
            [CMutableTxOut(self.output_amount_sat, CScript(self.output_script_pubkey))],
            nLockTime=self.locktime,
            nVersion=TX_VERSION,
        )

    @cached_property
    def _single_input(self) -> SingleInput:
        return SingleInput(
            self.commitment_txid,
            self.output_index,
            0,
            [(self.output_amount_sat, self.output_script_pubkey)],
            self.locktime,
        )

    @property
    def txid(self) -> str:
        return self._single_input.txid()

    @cached_property
    def digest(self) -> bytes:
        """The BIP 143 digest both HTLC keys sign (the single input, SIGHASH_ALL)."""
        return self._single_input.digest(self.input_witness_script, self.input_amount_sat)

    def sign(self, htlc_privkey: bytes) -> bytes:
        """DER signature with an HTLC key (local or remote) over the single input."""
        return sign_digest(htlc_privkey, self.digest)

    def check_signature(self, pubkey: bytes, der_sig: bytes) -> None:
        """Raise :class:`InvalidSignatureError` unless the signature is valid for ``pubkey``."""
        check_digest_signature(pubkey, self.digest, der_sig, "input 0")

    def finalize(
        self,
        remote_sig: bytes,
        local_sig: bytes,
        preimage: bytes | None = None,
        *,
        verify: bool = True,
    ) -> CTransaction:
        """Signed HTLC-timeout (no preimage) or HTLC-success (with the 32-byte preimage)."""
        if verify:
            self.check_signature(self.keys.remote_htlc_pubkey, remote_sig)
            self.check_signature(self.keys.local_htlc_pubkey, local_sig)
        tx = CMutableTransaction.from_tx(self.tx)
        rs, ls = with_sighash(remote_sig), with_sighash(local_sig)
        if self.is_timeout:
            if preimage is not None:
                raise InvalidPreimageError("an HTLC-timeout transaction takes no preimage")
            stack = htlc_timeout_witness(rs, ls, self.input_witness_script)
        else:
            if preimage is None:
                raise InvalidPreimageError("an HTLC-success transaction needs the preimage")
            check_preimage(preimage, self.htlc.payment_hash)
            stack = htlc_success_witness(rs, ls, preimage, self.input_witness_script)
        set_witness(tx, 0, stack)
        return CTransaction.from_tx(tx)


def build_htlc_tx(commitment: CommitmentTx, output_index: int) -> HtlcTx:
    """HTLC-timeout (offered) or HTLC-success (received) tx for one commitment output.

    Raises :class:`DustOutputError` if its output would be below the dust limit: such
    an HTLC must have been trimmed from the commitment.
    """
    out = commitment.outputs[output_index]
    if out.htlc is None or out.witness_script is None:
        raise Bolt3Error(f"commitment output {output_index} is not an HTLC output")
    htlc = out.htlc
    amount = out.amount_sat - htlc_tx_fee(htlc, commitment.feerate_per_kw)
    if amount < commitment.dust_limit_sat:
        raise DustOutputError(
            f"second-stage output of {amount} sat is below the dust limit "
            f"{commitment.dust_limit_sat} sat; the HTLC should have been trimmed"
        )
    return HtlcTx(
        htlc=htlc,
        input_witness_script=out.witness_script,
        input_amount_sat=out.amount_sat,
        output_witness_script=commitment.second_stage_script,
        keys=commitment.keys,
        to_self_delay=commitment.to_self_delay,
        commitment_txid=commitment.txid,
        output_index=output_index,
        output_amount_sat=amount,
        output_script_pubkey=commitment.second_stage_spk,
    )
