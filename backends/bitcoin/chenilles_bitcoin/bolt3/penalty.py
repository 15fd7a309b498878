"""Justice (penalty) transactions against a revoked commitment.

Once the counterparty revealed the per-commitment secret of a commitment, any
broadcast of it is theft; we derive the revocation private key and take every
output that pays them or that they could resolve: ``to_local`` via ``<sig> 1``, each
HTLC output via ``<sig> <revocationpubkey>``, and, if they already ran a
second-stage HTLC transaction, its delayed output via ``<sig> 1`` (also without
waiting for the CSV delay).  ``to_remote`` is ours already and needs no penalty.
"""

from __future__ import annotations

from collections.abc import Sequence

from bitcoin.core import CTransaction

from .commitment import CommitmentTx, HtlcTx, OutputKind
from .errors import RevocationSecretMismatchError
from .keys import derive_revocation_privkey, pubkey_from_secret
from .sweep import SpendableOutput, SpendPath, build_sweep_tx
from .txutil import OutPoint


def revocation_privkey_for(
    commitment: CommitmentTx, revocation_basepoint_secret: bytes, per_commitment_secret: bytes
) -> bytes:
    """Revocation private key of ``commitment``; raises if the secret does not match it."""
    priv = derive_revocation_privkey(revocation_basepoint_secret, per_commitment_secret)
    if pubkey_from_secret(priv) != commitment.keys.revocation_pubkey:
        raise RevocationSecretMismatchError("per-commitment secret does not revoke this commitment")
    return priv


def revoked_commitment_inputs(
    commitment: CommitmentTx, revocation_privkey: bytes
) -> list[SpendableOutput]:
    """Penalty inputs for every punishable output of a revoked commitment."""
    inputs = []
    for index, out in enumerate(commitment.outputs):
        if out.kind is OutputKind.TO_REMOTE:
            continue
        path = (
            SpendPath.REVOCATION if out.kind is OutputKind.TO_LOCAL else SpendPath.HTLC_REVOCATION
        )
        inputs.append(
            SpendableOutput(
                outpoint=OutPoint(commitment.txid, index),
                amount_sat=out.amount_sat,
                path=path,
                privkey=revocation_privkey,
                witness_script=out.witness_script,
            )
        )
    return inputs


def revoked_htlc_tx_input(
    htlc_tx: HtlcTx | CTransaction,
    revocation_privkey: bytes,
    output_witness_script: bytes | None = None,
) -> SpendableOutput:
    """Penalty input for the output of a second-stage HTLC tx spun off a revoked commitment."""
    if isinstance(htlc_tx, HtlcTx):
        ws, amount, txid = htlc_tx.output_witness_script, htlc_tx.output_amount_sat, htlc_tx.txid
    else:
        if output_witness_script is None:
            raise ValueError("the witness script of the HTLC tx output is required")
        from .txutil import txid_of

        ws, amount, txid = output_witness_script, htlc_tx.vout[0].nValue, txid_of(htlc_tx)
    return SpendableOutput(
        outpoint=OutPoint(txid, 0),
        amount_sat=amount,
        path=SpendPath.REVOCATION,
        privkey=revocation_privkey,
        witness_script=ws,
    )


def build_penalty_tx(
    commitment: CommitmentTx,
    revocation_privkey: bytes,
    destination_script_pubkey: bytes,
    feerate_per_kw: int,
    *,
    second_stage: Sequence[HtlcTx | CTransaction] = (),
    second_stage_witness_script: bytes | None = None,
    exclude_outputs: Sequence[int] = (),
    dust_limit_sat: int = 546,
    max_fee_sat: int | None = None,
) -> CTransaction:
    """Signed justice transaction sweeping a revoked commitment (and second-stage txs).

    ``exclude_outputs`` drops commitment outputs already spent by second-stage txs
    (they are then swept through ``second_stage``).
    """
    if pubkey_from_secret(revocation_privkey) != commitment.keys.revocation_pubkey:
        raise RevocationSecretMismatchError("revocation key does not match this commitment")
    inputs = [
        i
        for i in revoked_commitment_inputs(commitment, revocation_privkey)
        if i.outpoint.index not in exclude_outputs
    ]
    inputs += [
        revoked_htlc_tx_input(t, revocation_privkey, second_stage_witness_script)
        for t in second_stage
    ]
    return build_sweep_tx(
        inputs,
        destination_script_pubkey,
        feerate_per_kw,
        dust_limit_sat=dust_limit_sat,
        max_fee_sat=max_fee_sat,
    )
