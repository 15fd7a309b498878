"""Single-signature spends of BOLT 3 outputs into one destination.

The penalty (justice) transaction, the owner's sweep of its delayed outputs and the
counterparty's direct HTLC claims all have the same shape: inputs each unlocked by
one signature plus path-specific witness items, one output.  The fee is computed
from the transaction's worst-case weight (73-byte signatures) so it never falls
short of the feerate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from bitcoin.core import CMutableTransaction, CMutableTxIn, CMutableTxOut, CTransaction, Hash160
from bitcoin.core.script import CScript

from .errors import DustOutputError, FeeTooHighError, InvalidKeyError, UnaffordableFeeError
from .keys import pubkey_from_secret
from .scripts import (
    Witness,
    check_preimage,
    htlc_revocation_witness,
    offered_htlc_preimage_witness,
    p2wpkh,
    received_htlc_timeout_witness,
    revocation_witness,
    to_local_delayed_witness,
)
from .signing import sign_input, with_sighash
from .txutil import TX_VERSION, OutPoint, fee_for_weight, set_witness, weight

#: nSequence that signals replaceability (BIP 125) and enables nLockTime.
SEQUENCE_RBF = 0xFFFFFFFD
_MAX_SIG = b"\x30" + b"\x00" * 71 + b"\x01"  # 73 bytes: longest DER signature + sighash


class SpendPath(StrEnum):
    """How an input is unlocked."""

    TO_LOCAL_DELAYED = "to_local_delayed"  # owner, after to_self_delay: <sig> 0
    REVOCATION = "revocation"  # to_local / second-stage output: <sig> 1
    HTLC_REVOCATION = "htlc_revocation"  # HTLC output: <sig> <revocationpubkey>
    OFFERED_HTLC_PREIMAGE = "offered_htlc_preimage"  # remote: <sig> <preimage>
    RECEIVED_HTLC_TIMEOUT = "received_htlc_timeout"  # remote, after cltv: <sig> 0
    P2WPKH = "p2wpkh"  # to_remote: <sig> <pubkey>


@dataclass(frozen=True)
class SpendableOutput:
    """An output we can spend alone, and how."""

    outpoint: OutPoint
    amount_sat: int
    path: SpendPath
    privkey: bytes
    witness_script: bytes | None = None  # None only for P2WPKH
    preimage: bytes | None = None
    sequence: int = SEQUENCE_RBF

    def script_code(self) -> bytes:
        """Script that the signature commits to (BIP 143 scriptCode)."""
        if self.path is SpendPath.P2WPKH:
            pub = pubkey_from_secret(self.privkey)
            # P2WPKH scriptCode is the P2PKH script of the key hash.
            return b"\x76\xa9\x14" + bytes(Hash160(pub)) + b"\x88\xac"
        if self.witness_script is None:
            raise ValueError(f"{self.path.value} spend needs the witness script")
        return self.witness_script

    def witness(self, sig: bytes) -> Witness:
        """Witness stack for this path given a signature with its sighash byte."""
        ws = self.witness_script or b""
        match self.path:
            case SpendPath.TO_LOCAL_DELAYED:
                return to_local_delayed_witness(sig, ws)
            case SpendPath.REVOCATION:
                return revocation_witness(sig, ws)
            case SpendPath.HTLC_REVOCATION:
                return htlc_revocation_witness(sig, pubkey_from_secret(self.privkey), ws)
            case SpendPath.OFFERED_HTLC_PREIMAGE:
                if self.preimage is None:
                    raise ValueError("offered HTLC claim needs the preimage")
                check_preimage(self.preimage)
                return offered_htlc_preimage_witness(sig, self.preimage, ws)
            case SpendPath.RECEIVED_HTLC_TIMEOUT:
                return received_htlc_timeout_witness(sig, ws)
            case SpendPath.P2WPKH:
                return [sig, pubkey_from_secret(self.privkey)]
        raise AssertionError(self.path)

    def check_key(self) -> None:
        """Refuse a private key that cannot unlock this script (a watcher misconfiguration)."""
        pub = pubkey_from_secret(self.privkey)
        ws = self.witness_script or b""
        if self.path in (SpendPath.REVOCATION, SpendPath.TO_LOCAL_DELAYED):
            if pub not in ws:
                raise InvalidKeyError(f"key {pub.hex()} does not appear in the script")
        elif self.path is SpendPath.HTLC_REVOCATION and ws[3:23] != Hash160(pub):
            raise InvalidKeyError("key is not the revocation key of this HTLC script")


def build_sweep_tx(
    inputs: Sequence[SpendableOutput],
    destination_script_pubkey: bytes,
    feerate_per_kw: int,
    *,
    locktime: int = 0,
    dust_limit_sat: int = 546,
    max_fee_sat: int | None = None,
) -> CTransaction:
    """Sign and return a transaction sweeping ``inputs`` to one output.

    Raises :class:`FeeTooHighError` above ``max_fee_sat``, :class:`UnaffordableFeeError`
    if the inputs cannot pay the fee, :class:`DustOutputError` if what is left is dust.
    """
    if not inputs:
        raise ValueError("nothing to sweep")
    for inp in inputs:
        inp.check_key()
    tx = CMutableTransaction(
        [CMutableTxIn(i.outpoint.to_core(), nSequence=i.sequence) for i in inputs],
        [CMutableTxOut(0, CScript(destination_script_pubkey))],
        nLockTime=locktime,
        nVersion=TX_VERSION,
    )
    for n, inp in enumerate(inputs):  # worst-case witnesses, to size the fee
        set_witness(tx, n, inp.witness(_MAX_SIG))
    fee = fee_for_weight(feerate_per_kw, weight(tx))
    total = sum(i.amount_sat for i in inputs)
    if max_fee_sat is not None and fee > max_fee_sat:
        raise FeeTooHighError(f"sweep fee {fee} sat exceeds the limit {max_fee_sat} sat")
    if fee >= total:
        raise UnaffordableFeeError(f"inputs hold {total} sat, fee is {fee} sat")
    if total - fee < dust_limit_sat:
        raise DustOutputError(f"sweep output {total - fee} sat is below dust {dust_limit_sat} sat")
    tx.vout[0].nValue = total - fee
    for n, inp in enumerate(inputs):
        sig = sign_input(inp.privkey, tx, n, inp.script_code(), inp.amount_sat)
        set_witness(tx, n, inp.witness(with_sighash(sig)))
    return CTransaction.from_tx(tx)


def p2wpkh_script_pubkey(pubkey: bytes) -> bytes:
    """Convenience: a P2WPKH destination for a swept output."""
    return bytes(p2wpkh(pubkey))
