"""Every BOLT 3 spending path checked by Bitcoin Core's own script interpreter.

py-bitcoinkernel (libbitcoinkernel) runs the consensus script checks with
P2SH|WITNESS|CHECKLOCKTIMEVERIFY|CHECKSEQUENCEVERIFY|DERSIG|NULLDUMMY, so a spend
accepted here is accepted by Bitcoin Core, and the negative cases (early CSV or
CLTV, wrong or wrongly sized preimage, wrong signature) are rejected by it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pbk
import pytest
from bitcoin.core import CMutableTransaction, CTransaction
from chenilles_bitcoin.bolt3 import (
    CommitmentKeys,
    CommitmentTx,
    DustOutputError,
    FeeTooHighError,
    Htlc,
    InvalidPreimageError,
    InvalidSignatureError,
    OutPoint,
    OutputKind,
    RevocationSecretMismatchError,
    RevocationStore,
    SpendableOutput,
    SpendPath,
    UnaffordableFeeError,
    build_closing_tx,
    build_commitment_tx,
    build_penalty_tx,
    build_sweep_tx,
    closing_fee,
    derive_privkey,
    derive_revocation_privkey,
    funding_script,
    obscuring_factor,
    p2wpkh,
    p2wsh,
    per_commitment_point,
    per_commitment_secret,
    pubkey_from_secret,
    revocation_privkey_for,
    weight,
)
from chenilles_bitcoin.bolt3.txutil import set_witness

pytestmark = pytest.mark.bitcoin

F = pbk.ScriptVerificationFlags
FLAGS = F.P2SH | F.WITNESS | F.CHECKLOCKTIMEVERIFY | F.CHECKSEQUENCEVERIFY | F.DERSIG | F.NULLDUMMY

TO_SELF_DELAY = 144
FEERATE = 2500
DUST = 546
FUNDING_AMOUNT = 10_000_000
FUNDING = OutPoint("11" * 32, 1)


def kernel_accepts(tx: CTransaction, index: int, script_pubkey: bytes, amount: int) -> bool:
    """Bitcoin Core's verdict on input ``index`` of ``tx`` spending ``script_pubkey``."""
    return bool(
        pbk.ScriptPubkey(bytes(script_pubkey)).verify(
            amount, pbk.Transaction(tx.serialize()), None, index, FLAGS
        )
    )


def with_stack(tx: CTransaction, index: int, stack: list[bytes]) -> CTransaction:
    """Copy of ``tx`` with input ``index``'s witness replaced (to forge bad spends)."""
    m = CMutableTransaction.from_tx(tx)
    set_witness(m, index, stack)
    return CTransaction.from_tx(m)


def _secret(tag: str) -> bytes:
    return hashlib.sha256(tag.encode()).digest()


@dataclass
class Party:
    name: str

    def secret(self, what: str) -> bytes:
        return _secret(f"{self.name}/{what}")

    def point(self, what: str) -> bytes:
        return pubkey_from_secret(self.secret(what))


LOCAL, REMOTE = Party("alice"), Party("bob")
#: The funding output every commitment and closing transaction here spends.
FUNDING_KW = {
    "funding_outpoint": FUNDING,
    "funding_amount_sat": FUNDING_AMOUNT,
    "local_funding_pubkey": LOCAL.point("funding"),
    "remote_funding_pubkey": REMOTE.point("funding"),
}
PREIMAGES = [bytes([i + 1]) * 32 for i in range(4)]
HASHES = [hashlib.sha256(p).digest() for p in PREIMAGES]


@dataclass
class Scenario:
    commitment: CommitmentTx
    pcs: bytes  # local per-commitment secret of this commitment

    def out(self, kind: OutputKind, n: int = 0) -> tuple[int, object]:
        matches = [(i, o) for i, o in enumerate(self.commitment.outputs) if o.kind is kind]
        return matches[n]

    # keys of this commitment
    def local_delayed_priv(self) -> bytes:
        return derive_privkey(LOCAL.secret("delayed"), per_commitment_point(self.pcs))

    def local_htlc_priv(self) -> bytes:
        return derive_privkey(LOCAL.secret("htlc"), per_commitment_point(self.pcs))

    def remote_htlc_priv(self) -> bytes:
        return derive_privkey(REMOTE.secret("htlc"), per_commitment_point(self.pcs))

    def revocation_priv(self) -> bytes:
        return derive_revocation_privkey(REMOTE.secret("revocation"), self.pcs)


def make_scenario(
    commitment_number: int = 7,
    htlcs: list[Htlc] | None = None,
    feerate: int = FEERATE,
    to_local_msat: int = 6_000_000_000,
) -> Scenario:
    seed = LOCAL.secret("shaseed")
    pcs = per_commitment_secret(seed, commitment_number)
    keys = CommitmentKeys.derive(
        per_commitment_point(pcs),
        local_delayed_payment_basepoint=LOCAL.point("delayed"),
        local_htlc_basepoint=LOCAL.point("htlc"),
        remote_htlc_basepoint=REMOTE.point("htlc"),
        remote_revocation_basepoint=REMOTE.point("revocation"),
        remote_payment_basepoint=REMOTE.point("payment"),
    )
    if htlcs is None:
        htlcs = [
            Htlc(True, 200_000_000, HASHES[0], 600_100, 0),
            Htlc(False, 300_000_000, HASHES[1], 600_200, 1),
            Htlc(True, 100_000_000, HASHES[2], 600_300, 2),
            Htlc(False, 150_000_000, HASHES[3], 600_400, 3),
        ]
    to_remote = FUNDING_AMOUNT * 1000 - to_local_msat - sum(h.amount_msat for h in htlcs)
    c = build_commitment_tx(
        **FUNDING_KW,
        commitment_number=commitment_number,
        obscuring_factor=obscuring_factor(LOCAL.point("payment"), REMOTE.point("payment")),
        to_local_msat=to_local_msat,
        to_remote_msat=to_remote,
        local_is_funder=True,
        feerate_per_kw=feerate,
        dust_limit_sat=DUST,
        to_self_delay=TO_SELF_DELAY,
        keys=keys,
        htlcs=htlcs,
    )
    return Scenario(c, pcs)


def signed_commitment(s: Scenario) -> CTransaction:
    c = s.commitment
    return c.finalize(c.sign(LOCAL.secret("funding")), c.sign(REMOTE.secret("funding")))


FUNDING_SPK = bytes(p2wsh(funding_script(LOCAL.point("funding"), REMOTE.point("funding"))))
SWEEP_SPK = bytes(p2wpkh(LOCAL.point("sweep")))


# --- funding ------------------------------------------------------------------------


def test_funding_spend_needs_both_signatures_in_key_order() -> None:
    s = make_scenario()
    tx = signed_commitment(s)
    assert kernel_accepts(tx, 0, FUNDING_SPK, FUNDING_AMOUNT)
    stack = list(tx.wit.vtxinwit[0].scriptWitness.stack)
    assert not kernel_accepts(
        with_stack(tx, 0, [stack[0], stack[2], stack[1], stack[3]]), 0, FUNDING_SPK, FUNDING_AMOUNT
    )  # swapped order
    assert not kernel_accepts(
        with_stack(tx, 0, [stack[0], stack[1], stack[1], stack[3]]), 0, FUNDING_SPK, FUNDING_AMOUNT
    )  # one key signed twice
    assert not kernel_accepts(tx, 0, FUNDING_SPK, FUNDING_AMOUNT + 1)  # amount is committed


def test_finalize_rejects_a_bad_peer_signature() -> None:
    c = make_scenario().commitment
    bad = c.sign(REMOTE.secret("not-the-funding-key"))
    with pytest.raises(InvalidSignatureError):
        c.finalize(c.sign(LOCAL.secret("funding")), bad)
    with pytest.raises(InvalidSignatureError):
        c.check_signature(REMOTE.point("funding"), b"\x30\x06\x02\x01\x01\x02\x01\x01")


# --- to_local ----------------------------------------------------------------------


def test_to_local_delayed_spend_respects_to_self_delay() -> None:
    s = make_scenario()
    idx, out = s.out(OutputKind.TO_LOCAL)
    txid = s.commitment.txid

    def sweep(sequence: int) -> CTransaction:
        return build_sweep_tx(
            [
                SpendableOutput(
                    OutPoint(txid, idx),
                    out.amount_sat,
                    SpendPath.TO_LOCAL_DELAYED,
                    s.local_delayed_priv(),
                    out.witness_script,
                    sequence=sequence,
                )
            ],
            SWEEP_SPK,
            FEERATE,
        )

    assert kernel_accepts(sweep(TO_SELF_DELAY), 0, out.script_pubkey, out.amount_sat)
    assert not kernel_accepts(sweep(TO_SELF_DELAY - 1), 0, out.script_pubkey, out.amount_sat)


def test_to_local_revocation_spend() -> None:
    s = make_scenario()
    idx, out = s.out(OutputKind.TO_LOCAL)
    inp = SpendableOutput(
        OutPoint(s.commitment.txid, idx),
        out.amount_sat,
        SpendPath.REVOCATION,
        s.revocation_priv(),
        out.witness_script,
    )
    tx = build_sweep_tx([inp], SWEEP_SPK, FEERATE)
    assert kernel_accepts(tx, 0, out.script_pubkey, out.amount_sat)
    # The delayed key cannot take the revocation branch.
    wrong = build_sweep_tx(
        [
            SpendableOutput(
                inp.outpoint,
                inp.amount_sat,
                SpendPath.TO_LOCAL_DELAYED,
                s.local_delayed_priv(),
                out.witness_script,
            )
        ],
        SWEEP_SPK,
        FEERATE,
    )
    forged = with_stack(
        wrong, 0, [wrong.wit.vtxinwit[0].scriptWitness.stack[0], b"\x01", out.witness_script]
    )
    assert not kernel_accepts(forged, 0, out.script_pubkey, out.amount_sat)


# --- offered HTLC --------------------------------------------------------------------


def test_offered_htlc_remote_claims_with_preimage() -> None:
    s = make_scenario()
    idx, out = s.out(OutputKind.OFFERED_HTLC)
    preimage = PREIMAGES[out.htlc.htlc_id]
    inp = SpendableOutput(
        OutPoint(s.commitment.txid, idx),
        out.amount_sat,
        SpendPath.OFFERED_HTLC_PREIMAGE,
        s.remote_htlc_priv(),
        out.witness_script,
        preimage=preimage,
    )
    tx = build_sweep_tx([inp], SWEEP_SPK, FEERATE)
    assert kernel_accepts(tx, 0, out.script_pubkey, out.amount_sat)
    sig = tx.wit.vtxinwit[0].scriptWitness.stack[0]
    for bad in (b"\x00" * 32, preimage[:31], preimage + b"\x00", PREIMAGES[3]):
        assert not kernel_accepts(
            with_stack(tx, 0, [sig, bad, out.witness_script]), 0, out.script_pubkey, out.amount_sat
        )


def test_offered_htlc_local_timeout_via_htlc_timeout_tx() -> None:
    s = make_scenario()
    idx, out = s.out(OutputKind.OFFERED_HTLC)
    htx = next(h for h in s.commitment.htlc_txs() if h.htlc == out.htlc)
    assert htx.is_timeout and htx.tx.nLockTime == out.htlc.cltv_expiry
    assert htx.tx.vin[0].prevout.n == idx and htx.tx.vin[0].nSequence == 0
    tx = htx.finalize(htx.sign(s.remote_htlc_priv()), htx.sign(s.local_htlc_priv()))
    assert kernel_accepts(tx, 0, out.script_pubkey, out.amount_sat)
    # Local alone (its own key twice) cannot time out: the remote's signature is required.
    own = htx.sign(s.local_htlc_priv())
    with pytest.raises(InvalidSignatureError):
        htx.finalize(own, own)
    forged = htx.finalize(own, own, verify=False)
    assert not kernel_accepts(forged, 0, out.script_pubkey, out.amount_sat)


def test_offered_htlc_revocation() -> None:
    s = make_scenario()
    idx, out = s.out(OutputKind.OFFERED_HTLC)
    inp = SpendableOutput(
        OutPoint(s.commitment.txid, idx),
        out.amount_sat,
        SpendPath.HTLC_REVOCATION,
        s.revocation_priv(),
        out.witness_script,
    )
    tx = build_sweep_tx([inp], SWEEP_SPK, FEERATE)
    assert kernel_accepts(tx, 0, out.script_pubkey, out.amount_sat)


# --- received HTLC -------------------------------------------------------------------


def test_received_htlc_local_success_via_htlc_success_tx() -> None:
    s = make_scenario()
    idx, out = s.out(OutputKind.RECEIVED_HTLC)
    htx = next(h for h in s.commitment.htlc_txs() if h.htlc == out.htlc)
    assert not htx.is_timeout and htx.tx.nLockTime == 0
    assert htx.tx.vin[0].prevout.n == idx and htx.tx.vin[0].nSequence == 0
    rs, ls = htx.sign(s.remote_htlc_priv()), htx.sign(s.local_htlc_priv())
    preimage = PREIMAGES[out.htlc.htlc_id]
    tx = htx.finalize(rs, ls, preimage)
    assert kernel_accepts(tx, 0, out.script_pubkey, out.amount_sat)
    stack = list(tx.wit.vtxinwit[0].scriptWitness.stack)
    for bad in (PREIMAGES[0], preimage[:31], preimage + b"\x00"):
        forged = with_stack(tx, 0, [*stack[:3], bad, stack[4]])
        assert not kernel_accepts(forged, 0, out.script_pubkey, out.amount_sat)
    for bad in (PREIMAGES[0], preimage[:31], preimage + b"\x00"):
        with pytest.raises(InvalidPreimageError):
            htx.finalize(rs, ls, bad)


def test_received_htlc_remote_timeout_after_cltv() -> None:
    s = make_scenario()
    idx, out = s.out(OutputKind.RECEIVED_HTLC)
    cltv = out.htlc.cltv_expiry

    def claim(locktime: int, sequence: int = 0xFFFFFFFD) -> CTransaction:
        inp = SpendableOutput(
            OutPoint(s.commitment.txid, idx),
            out.amount_sat,
            SpendPath.RECEIVED_HTLC_TIMEOUT,
            s.remote_htlc_priv(),
            out.witness_script,
            sequence=sequence,
        )
        return build_sweep_tx([inp], SWEEP_SPK, FEERATE, locktime=locktime)

    assert kernel_accepts(claim(cltv), 0, out.script_pubkey, out.amount_sat)
    assert not kernel_accepts(claim(cltv - 1), 0, out.script_pubkey, out.amount_sat)
    assert not kernel_accepts(claim(cltv, 0xFFFFFFFF), 0, out.script_pubkey, out.amount_sat)


def test_received_htlc_revocation() -> None:
    s = make_scenario()
    idx, out = s.out(OutputKind.RECEIVED_HTLC)
    inp = SpendableOutput(
        OutPoint(s.commitment.txid, idx),
        out.amount_sat,
        SpendPath.HTLC_REVOCATION,
        s.revocation_priv(),
        out.witness_script,
    )
    assert kernel_accepts(
        build_sweep_tx([inp], SWEEP_SPK, FEERATE), 0, out.script_pubkey, out.amount_sat
    )


# --- second stage, penalty, closing -------------------------------------------------


def _signed_htlc_txs(s: Scenario) -> list[CTransaction]:
    txs = []
    for h in s.commitment.htlc_txs():
        pre = None if h.is_timeout else PREIMAGES[h.htlc.htlc_id]
        txs.append(h.finalize(h.sign(s.remote_htlc_priv()), h.sign(s.local_htlc_priv()), pre))
    return txs


def test_second_stage_output_delayed_and_revocable() -> None:
    s = make_scenario()
    htx = s.commitment.htlc_txs()[0]
    spk = bytes(p2wsh(htx.output_witness_script))
    op = OutPoint(htx.txid, 0)
    amt = htx.output_amount_sat

    def sweep(path: SpendPath, priv: bytes, seq: int) -> CTransaction:
        return build_sweep_tx(
            [SpendableOutput(op, amt, path, priv, htx.output_witness_script, sequence=seq)],
            SWEEP_SPK,
            FEERATE,
        )

    assert kernel_accepts(
        sweep(SpendPath.TO_LOCAL_DELAYED, s.local_delayed_priv(), TO_SELF_DELAY), 0, spk, amt
    )
    assert not kernel_accepts(
        sweep(SpendPath.TO_LOCAL_DELAYED, s.local_delayed_priv(), 10), 0, spk, amt
    )
    assert kernel_accepts(sweep(SpendPath.REVOCATION, s.revocation_priv(), 0xFFFFFFFD), 0, spk, amt)


def test_penalty_tx_sweeps_every_output_of_a_revoked_commitment() -> None:
    s = make_scenario(commitment_number=3)
    # The remote learns our secret for commitment 3 when we revoke it.
    store = RevocationStore()
    seed = LOCAL.secret("shaseed")
    for n in range(4):
        store.insert_commitment_secret(per_commitment_secret(seed, n), n)
    secret = store.get_commitment_secret(3)
    rev = revocation_privkey_for(s.commitment, REMOTE.secret("revocation"), secret)
    with pytest.raises(RevocationSecretMismatchError):
        revocation_privkey_for(
            s.commitment, REMOTE.secret("revocation"), store.get_commitment_secret(2)
        )

    penalty = build_penalty_tx(s.commitment, rev, bytes(p2wpkh(REMOTE.point("sweep"))), FEERATE)
    swept = [o for o in s.commitment.outputs if o.kind is not OutputKind.TO_REMOTE]
    assert len(penalty.vin) == len(swept) == 5
    for n, o in enumerate(swept):
        assert kernel_accepts(penalty, n, o.script_pubkey, o.amount_sat)

    # Variant: the cheater already published its HTLC txs; sweep their outputs too.
    htlc_txs = s.commitment.htlc_txs()
    penalty2 = build_penalty_tx(
        s.commitment,
        rev,
        bytes(p2wpkh(REMOTE.point("sweep"))),
        FEERATE,
        second_stage=htlc_txs,
        exclude_outputs=s.commitment.htlc_output_indexes(),
    )
    assert len(penalty2.vin) == 1 + len(htlc_txs)
    _, to_local = s.out(OutputKind.TO_LOCAL)
    assert kernel_accepts(penalty2, 0, to_local.script_pubkey, to_local.amount_sat)
    for n, h in enumerate(htlc_txs, start=1):
        assert kernel_accepts(
            penalty2, n, bytes(p2wsh(h.output_witness_script)), h.output_amount_sat
        )
    # The second-stage txs themselves were valid spends of the commitment.
    for tx, h in zip(_signed_htlc_txs(s), htlc_txs, strict=True):
        assert kernel_accepts(tx, 0, bytes(p2wsh(h.input_witness_script)), h.input_amount_sat)


def test_closing_tx() -> None:
    local_spk, remote_spk = (
        bytes(p2wpkh(LOCAL.point("close"))),
        bytes(p2wpkh(REMOTE.point("close"))),
    )
    fee = closing_fee(FEERATE, local_spk, remote_spk)
    ct = build_closing_tx(
        **FUNDING_KW,
        local_script_pubkey=local_spk,
        remote_script_pubkey=remote_spk,
        to_local_msat=7_000_000_000,
        to_remote_msat=3_000_000_000,
        local_is_funder=True,
        fee_sat=fee,
        dust_limit_sat=DUST,
    )
    tx = ct.finalize(ct.sign(LOCAL.secret("funding")), ct.sign(REMOTE.secret("funding")))
    assert kernel_accepts(tx, 0, FUNDING_SPK, FUNDING_AMOUNT)
    assert tx.vin[0].nSequence == 0xFFFFFFFF and tx.nLockTime == 0
    assert [o.nValue for o in tx.vout] == [3_000_000, 7_000_000 - fee]
    assert weight(tx) <= 4 * 4 + __import__("chenilles_bitcoin.bolt3").bolt3.closing_weight(
        local_spk, remote_spk
    )  # estimate is an upper bound (73-byte signatures)


def test_closing_tx_drops_dust_and_checks_fee() -> None:
    kw = dict(
        **FUNDING_KW,
        local_script_pubkey=bytes(p2wpkh(LOCAL.point("c"))),
        remote_script_pubkey=bytes(p2wpkh(REMOTE.point("c"))),
        local_is_funder=True,
        dust_limit_sat=DUST,
    )
    ct = build_closing_tx(to_local_msat=9_999_500_000, to_remote_msat=500_000, fee_sat=1000, **kw)
    assert len(ct.tx.vout) == 1 and ct.fee_sat == 1500
    with pytest.raises(UnaffordableFeeError):
        build_closing_tx(to_local_msat=500_000, to_remote_msat=9_999_500_000, fee_sat=1000, **kw)
    with pytest.raises(FeeTooHighError):
        build_closing_tx(
            to_local_msat=7_000_000_000,
            to_remote_msat=3_000_000_000,
            fee_sat=10_000,
            max_fee_sat=5_000,
            **kw,
        )


# --- fee and dust errors -------------------------------------------------------------


def test_commitment_fee_errors_and_dust() -> None:
    with pytest.raises(FeeTooHighError):
        build_commitment_tx(
            **FUNDING_KW,
            commitment_number=1,
            obscuring_factor=0,
            to_local_msat=6_000_000_000,
            to_remote_msat=4_000_000_000,
            local_is_funder=True,
            feerate_per_kw=50_000,
            dust_limit_sat=DUST,
            to_self_delay=TO_SELF_DELAY,
            keys=make_scenario().commitment.keys,
            max_fee_sat=10_000,
        )
    with pytest.raises(UnaffordableFeeError):
        build_commitment_tx(
            **FUNDING_KW,
            commitment_number=1,
            obscuring_factor=0,
            to_local_msat=1_000_000,
            to_remote_msat=9_999_000_000,
            local_is_funder=True,
            feerate_per_kw=5_000,
            dust_limit_sat=DUST,
            to_self_delay=TO_SELF_DELAY,
            keys=make_scenario().commitment.keys,
            require_affordable=True,
        )
    # A sweep whose output would be dust is refused rather than built.
    s = make_scenario(htlcs=[Htlc(True, 3_000_000, HASHES[0], 600_100, 0)], feerate=253)
    idx, out = s.out(OutputKind.OFFERED_HTLC)
    inp = SpendableOutput(
        OutPoint(s.commitment.txid, idx),
        out.amount_sat,
        SpendPath.HTLC_REVOCATION,
        s.revocation_priv(),
        out.witness_script,
    )
    with pytest.raises(DustOutputError):
        build_sweep_tx([inp], SWEEP_SPK, 5_000)


def test_cltv_tiebreak_orders_identical_offered_htlcs() -> None:
    """Two offered HTLCs with the same hash and amount have identical outputs: cltv decides."""
    htlcs = [
        Htlc(True, 5_000_000, HASHES[0], 600_506, 5),
        Htlc(True, 5_000_000, HASHES[0], 600_505, 6),
        Htlc(False, 5_000_000, HASHES[1], 600_400, 1),
    ]
    s = make_scenario(htlcs=htlcs, feerate=253)
    offered = [o for o in s.commitment.outputs if o.kind is OutputKind.OFFERED_HTLC]
    assert offered[0].script_pubkey == offered[1].script_pubkey
    assert [o.htlc.cltv_expiry for o in offered] == [600_505, 600_506]
    locktimes = [h.tx.nLockTime for h in s.commitment.htlc_txs() if h.is_timeout]
    assert locktimes == [600_505, 600_506]


# --- measured weights ----------------------------------------------------------------


def measure_weights() -> dict[str, tuple[int, int]]:
    """(weight, vsize) of each signed transaction type, for the report and the docs."""
    from chenilles_bitcoin.bolt3 import closing_weight, commitment_weight, vsize

    out: dict[str, tuple[int, int]] = {}
    s0 = make_scenario(htlcs=[])
    tx0 = signed_commitment(s0)
    out["commitment, 0 HTLCs"] = (weight(tx0), vsize(tx0))
    s = make_scenario()
    tx4 = signed_commitment(s)
    out["commitment, 4 HTLCs"] = (weight(tx4), vsize(tx4))
    for htx, tx in zip(s.commitment.htlc_txs(), _signed_htlc_txs(s), strict=True):
        name = "HTLC-timeout" if htx.is_timeout else "HTLC-success"
        out.setdefault(name, (weight(tx), vsize(tx)))
    local_spk, remote_spk = bytes(p2wpkh(LOCAL.point("c"))), bytes(p2wpkh(REMOTE.point("c")))
    ct = build_closing_tx(
        **FUNDING_KW,
        local_script_pubkey=local_spk,
        remote_script_pubkey=remote_spk,
        to_local_msat=7_000_000_000,
        to_remote_msat=3_000_000_000,
        local_is_funder=True,
        fee_sat=closing_fee(FEERATE, local_spk, remote_spk),
        dust_limit_sat=DUST,
    )
    ctx = ct.finalize(ct.sign(LOCAL.secret("funding")), ct.sign(REMOTE.secret("funding")))
    out["closing, 2 outputs"] = (weight(ctx), vsize(ctx))
    rev = s.revocation_priv()
    p = build_penalty_tx(s.commitment, rev, SWEEP_SPK, FEERATE)
    out["penalty, to_local + 4 HTLCs"] = (weight(p), vsize(p))
    p1 = build_penalty_tx(s0.commitment, s0.revocation_priv(), SWEEP_SPK, FEERATE)
    out["penalty, to_local only"] = (weight(p1), vsize(p1))
    assert out["commitment, 0 HTLCs"][0] <= commitment_weight(0)
    assert out["commitment, 4 HTLCs"][0] <= commitment_weight(4)
    assert out["closing, 2 outputs"][0] <= closing_weight(local_spk, remote_spk)
    return out


def test_measured_weights_within_bolt3_expectations() -> None:
    w = measure_weights()
    assert 700 - 4 <= w["commitment, 0 HTLCs"][0] <= 724
    assert w["HTLC-timeout"][0] <= 663 and w["HTLC-success"][0] <= 703
    for name, (wu, vb) in w.items():
        print(f"{name:32s} weight {wu:5d}  vsize {vb:4d}")
