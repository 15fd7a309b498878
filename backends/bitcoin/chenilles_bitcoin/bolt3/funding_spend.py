"""What every transaction spending the 2-of-2 funding output shares (commitment, closing).

Both are signed the same way (one SIGHASH_ALL signature per funding key over input 0) and
completed the same way (the funding witness, signatures in funding-key order), so the
logic lives here once.

The txid and the digest both signers sign are computed once per transaction: a built
transaction is treated as immutable (nothing may change ``tx``, the amount or the keys).
"""

from __future__ import annotations

from functools import cached_property

from bitcoin.core import CMutableTransaction, CTransaction

from .scripts import funding_script, funding_witness
from .signing import check_digest_signature, sign_digest, with_sighash
from .txutil import SegwitV0Sighash, set_witness, txid_of


class FundingSpend:
    """Mixin for a dataclass with ``tx``, ``funding_amount_sat`` and both funding keys."""

    tx: CMutableTransaction
    funding_amount_sat: int
    local_funding_pubkey: bytes
    remote_funding_pubkey: bytes

    @cached_property
    def funding_script(self) -> bytes:
        return bytes(funding_script(self.local_funding_pubkey, self.remote_funding_pubkey))

    @cached_property
    def txid(self) -> str:
        return txid_of(self.tx)

    @cached_property
    def funding_digest(self) -> bytes:
        """The BIP 143 digest both funding keys sign (input 0, SIGHASH_ALL)."""
        return SegwitV0Sighash(self.tx).digest(0, self.funding_script, self.funding_amount_sat)

    def sign(self, funding_privkey: bytes) -> bytes:
        return sign_digest(funding_privkey, self.funding_digest)

    def check_signature(self, pubkey: bytes, der_sig: bytes) -> None:
        check_digest_signature(pubkey, self.funding_digest, der_sig, "input 0")

    def finalize(self, local_sig: bytes, remote_sig: bytes, *, verify: bool = True) -> CTransaction:
        """Fully signed transaction; signatures are placed by funding-key order.

        With ``verify`` both signatures are checked first, so a bad one from the peer is
        reported as :class:`InvalidSignatureError`, not as a rejected broadcast.
        """
        if verify:
            self.check_signature(self.local_funding_pubkey, local_sig)
            self.check_signature(self.remote_funding_pubkey, remote_sig)
        tx = CMutableTransaction.from_tx(self.tx)
        set_witness(
            tx,
            0,
            funding_witness(
                with_sighash(local_sig),
                self.local_funding_pubkey,
                with_sighash(remote_sig),
                self.remote_funding_pubkey,
            ),
        )
        return CTransaction.from_tx(tx)
