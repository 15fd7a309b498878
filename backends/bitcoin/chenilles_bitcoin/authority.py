"""The Bitcoin ``StateAuthority``: core states in, BOLT 3 signatures and revocations out.

Signing version ``v`` means signing the *peer's* commitment ``v``, which is built under the
peer's per-commitment point for ``v``: the point in the peer's participant key for ``v = 0``,
else the ``next_point`` of the peer's bundle on ``v - 1`` (found in ``previous``). Verifying
means rebuilding *our* commitment ``v`` from the state and checking the peer's signatures
on it and on our HTLC transactions; any mismatch between what the peer signed and the
agreed state therefore fails verification.

A revocation is our per-commitment secret of the revoked version; the peer's is checked
against the point its bundle announced and kept in the channel's shachain store, where the
watcher finds it to punish a revoked commitment.

Pure computation apart from the chain's clock: ``expiry_image`` (the backend's unix ->
height map) and, before refusing a peer's late image, ``late_native_expiry_ok``.
"""

from __future__ import annotations

from collections.abc import Callable

from chenilles_hub.core import ChannelParams, ChannelState, SignedState
from chenilles_hub.core.errors import StateMismatch

from .bolt3 import (
    Bolt3Error,
    CommitmentTx,
    InvalidKeyError,
    check_point,
    derive_privkey,
    per_commitment_point,
)
from .bundle import Bundle, BundleError, decode_bundle, encode_bundle
from .channel_keys import ChannelSecrets
from .commitments import ChannelView, check_amounts
from .record import ChannelRecord, RecordFull

#: How many blocks earlier than the exact image a peer's native expiry may be.
EXPIRY_TOLERANCE = 6
#: Commitments an authority remembers (see ``_commitment``).
_KEEP_COMMITMENTS = 4


class BitcoinAuthority:
    def __init__(
        self,
        view: ChannelView,
        secrets: ChannelSecrets,
        me: int,
        record: ChannelRecord,
        expiry_image: Callable[[int], int],
        late_native_expiry_ok: Callable[[int, int], bool] | None = None,
    ) -> None:
        self.view = view
        self.secrets = secrets
        self.me = me
        self.peer = 1 - me
        self.record = record
        self._expiry_image = expiry_image
        #: Asked before refusing a peer's native expiry later than our image: the peer's
        #: read of the tip may be newer than ours, or a block or two older (the backend's
        #: ``_late_native_expiry_ok`` reads the chain).
        self._late_native_expiry_ok = late_native_expiry_ok
        self._commitments: dict[tuple[int, int, bytes], tuple[ChannelState, CommitmentTx]] = {}

    def _commitment(self, owner: int, state: ChannelState, point: bytes) -> CommitmentTx:
        """``owner``'s commitment of ``state`` under ``point``, built once per participant.

        Each side needs its own commitment of a version twice (``sign`` checks that it can be
        built, ``verify`` checks the peer's signatures on it), so the last few are kept. The
        cache is this participant's alone: two authorities never share work, as two nodes on
        two machines could not.
        """
        key = (owner, state.version, point)
        hit = self._commitments.get(key)
        if hit is not None and hit[0] == state:
            return hit[1]
        tx = self.view.commitment(owner, state, point, self.secrets)
        self._commitments.pop(key, None)
        if len(self._commitments) >= _KEEP_COMMITMENTS:
            del self._commitments[next(iter(self._commitments))]
        self._commitments[key] = (state, tx)
        return tx

    # --- points -------------------------------------------------------------------------

    def _point_of(self, who: int, version: int, previous: SignedState | None) -> bytes:
        """Participant ``who``'s per-commitment point for ``version``."""
        if who == self.me:
            return self.secrets.commitment_point(version)
        if version == 0:
            return self.view.keys[who].first_point
        if previous is None or previous.version != version - 1 or not previous.signatures[who]:
            raise StateMismatch(
                f"the peer's point for version {version} comes from its bundle on {version - 1}"
            )
        return decode_bundle(previous.signatures[who]).next_point

    # --- StateAuthority -----------------------------------------------------------------

    def sign(
        self, params: ChannelParams, state: ChannelState, previous: SignedState | None
    ) -> bytes:
        check_amounts(state)
        peer_point = self._point_of(self.peer, state.version, previous)
        self._commitment(self.me, state, self.secrets.commitment_point(state.version))
        theirs = self._commitment(self.peer, state, peer_point)
        htlc_key = derive_privkey(
            self.secrets.htlc_secret, peer_point, self.secrets.public.htlc_basepoint
        )
        closing_sig = (
            self.view.closing(state).sign(self.secrets.funding_secret) if state.final else b""
        )
        self.record.note_state(state)
        return encode_bundle(
            Bundle(
                commitment_sig=theirs.sign(self.secrets.funding_secret),
                htlc_sigs=tuple(tx.sign(htlc_key) for tx in theirs.htlc_txs()),
                point=self.secrets.commitment_point(state.version),
                next_point=self.secrets.commitment_point(state.version + 1),
                closing_sig=closing_sig,
            )
        )

    def verify(
        self,
        params: ChannelParams,
        state: ChannelState,
        signer: int,
        bundle: bytes,
        previous: SignedState | None,
    ) -> bool:
        check_amounts(state)  # out-of-range amounts are an error, not a bad signature
        if signer == self.me:
            try:
                return bundle == self.sign(params, state, previous)
            except RecordFull:  # HTLCs this version never had: not a bundle of ours
                return False
        try:
            b = decode_bundle(bundle)
            if b.point != self._point_of(signer, state.version, previous):
                return False
            ours = self._commitment(self.me, state, self.secrets.commitment_point(state.version))
            ours.check_signature(self.view.keys[signer].funding_pubkey, b.commitment_sig)
            htlc_txs = ours.htlc_txs()
            if len(htlc_txs) != len(b.htlc_sigs):
                return False
            for tx, sig in zip(htlc_txs, b.htlc_sigs, strict=True):
                tx.check_signature(ours.keys.remote_htlc_pubkey, sig)
            if state.final:
                self.view.closing(state).check_signature(
                    self.view.keys[signer].funding_pubkey, b.closing_sig
                )
            elif b.closing_sig:
                return False
            # b.point equals a point already known to be valid; the next one must be too.
            check_point(b.next_point)
        except (BundleError, Bolt3Error, StateMismatch, ValueError, TypeError):
            return False
        # A good signature; our record refusing one more attempt at this version is ours to
        # say (``record_full``), not the peer's bad signature.
        self.record.note_state(state)
        self.record.note_peer_points(state.version, b.point, b.next_point)
        return True

    def revoke(self, params: ChannelParams, signed: SignedState) -> bytes | None:
        return self.secrets.commitment_secret(signed.version)

    def verify_revocation(
        self, params: ChannelParams, signed: SignedState, signer: int, revocation: bytes | None
    ) -> bool:
        if revocation is None or len(revocation) != 32:
            return False
        if signer == self.me:
            return revocation == self.secrets.commitment_secret(signed.version)
        try:
            announced = decode_bundle(signed.signatures[signer]).point
            if per_commitment_point(revocation) != announced:
                return False
            self.record.add_revocation(signed.version, revocation)
        except (BundleError, InvalidKeyError, Bolt3Error):
            return False
        return True

    def native_expiry_ok(self, expiry: int, native_expiry: int) -> bool:
        image = self._expiry_image(expiry)
        if native_expiry <= image:
            return native_expiry >= image - EXPIRY_TOLERANCE
        late_ok = self._late_native_expiry_ok
        return late_ok is not None and late_ok(expiry, native_expiry)


__all__ = ["EXPIRY_TOLERANCE", "BitcoinAuthority"]
