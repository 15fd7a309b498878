"""Core channel states -> BOLT 3 transactions, deterministically, from either side.

Both participants must build byte-identical transactions from the same ``ChannelState``,
or the signatures they exchange are worthless. Everything here is therefore a pure function
of the channel params (both participant keys, the funding txid in ``params.nonce``), the
state, a per-commitment point and the backend's fixed :class:`ChannelPolicy`.

Mapping (see docs/bitcoin.md):

* commitment number = state version; participant 0 is the funder (pays every fee);
* core amounts are satoshi, BOLT 3 amounts msat = sat * 1000;
* a core HTLC is *offered* in the commitment of its payer, *received* in the payee's, with
  ``cltv_expiry = native_expiry`` (a block height);
* to_remote pays the static payment basepoint (``option_static_remotekey``), so a payout
  needs no per-commitment data to be swept;
* the cooperative closing transaction pays each side's payment basepoint (P2WPKH), fee from
  the funder at the channel feerate;
* what makes a commitment mineable (dust limit, BOLT 2 channel reserve, the funder's fee,
  HTLC trimming) is declared to the core as :func:`channel_rules`, so a state that breaks it
  is refused before anyone signs it; a commitment without outputs is still refused here
  (:class:`~chenilles_hub.core.errors.UnmineableState`), never built.
"""

from __future__ import annotations

import math

from chenilles_hub.core import Asset, AssetRules, ChannelParams, ChannelRules, ChannelState, Htlc
from chenilles_hub.core.errors import (
    AmountOutOfRange,
    InsufficientBalance,
    InvalidParams,
    UnmineableState,
)

from .bolt3 import (
    COMMITMENT_BASE_WEIGHT,
    COMMITMENT_WEIGHT_PER_HTLC,
    ClosingTx,
    CommitmentKeys,
    CommitmentTx,
    FeeTooHighError,
    KeySecrets,
    NoOutputError,
    OutPoint,
    UnaffordableFeeError,
    build_closing_tx,
    build_commitment_tx,
    closing_fee,
    funding_script,
    htlc_success_fee,
    htlc_timeout_fee,
    obscuring_factor,
    offered_htlc_script,
    p2wpkh,
    p2wsh,
    received_htlc_script,
    to_local_script,
)
from .bolt3 import Htlc as Bolt3Htlc
from .channel_keys import ChannelPublicKeys, ChannelSecrets, parse_chain_key
from .policy import BLOCK_INTERVAL, ChannelPolicy, policy_in_key

#: 21 million BTC in satoshi: no Bitcoin amount can be larger.
MAX_SAT = 21_000_000 * 100_000_000
MIN_TO_SELF_DELAY = 6
NATIVE_TOKEN = "native"
FUNDING_OUTPUT = 0


class CommitmentFeeError(InsufficientBalance):
    """The funder cannot pay the commitment fee, or the fee is above the backend's limit."""

    code = "commitment_fee"


#: BOLT 2's channel reserve: 1% of the channel (at least the dust limit).
RESERVE_PPM = 10_000


def channel_rules(
    params: ChannelParams, policy: ChannelPolicy, max_trimmed: int | None = None
) -> ChannelRules:
    """What a commitment of this channel needs to be mineable, in the core's terms: the
    funder (participant 0) pays ``feerate * (724 + 172 * HTLC outputs) / 1000``; an HTLC
    gets an output only from the dust limit plus its second-stage fee up (HTLC-timeout in
    its payer's commitment, HTLC-success in its payee's); each side keeps 1% of the channel
    once it has it, at least the dust limit; the HTLCs without an output add up to at most
    ``max_trimmed`` (the node's ``max_dust_exposure_sat``)."""
    rate = policy.feerate_per_kw
    return ChannelRules(
        tuple(
            AssetRules(
                asset,
                dust_limit=policy.dust_limit_sat,
                reserve_ppm=RESERVE_PPM,
                reserve_min=policy.dust_limit_sat,
                fee_payer=0,
                fee_base=rate * COMMITMENT_BASE_WEIGHT,
                fee_per_htlc=rate * COMMITMENT_WEIGHT_PER_HTLC,
                fee_divisor=1000,
                htlc_trim=(
                    policy.dust_limit_sat + htlc_timeout_fee(rate),
                    policy.dust_limit_sat + htlc_success_fee(rate),
                ),
                max_trimmed=max_trimmed,
            )
            for asset in params.assets
        )
    )


def to_self_delay(params: ChannelParams, block_interval: int = BLOCK_INTERVAL) -> int:
    """CSV delay in blocks: the challenge duration in blocks, at least 6 blocks."""
    return max(MIN_TO_SELF_DELAY, math.ceil(params.challenge_duration / block_interval))


def check_amounts(state: ChannelState) -> None:
    """Refuse amounts no Bitcoin output can hold (core amounts go up to 2**256-1)."""
    for entry in state.balances:
        for amount in entry.amounts:
            if amount > MAX_SAT:
                raise AmountOutOfRange(f"{amount} sat exceeds the 21e14 sat of all bitcoin")
    for htlc in state.htlcs:
        if htlc.amount > MAX_SAT:
            raise AmountOutOfRange(f"HTLC {htlc.id}: {htlc.amount} sat exceeds 21e14 sat")
    for entry in state.balances:
        if state.total(entry.asset) > MAX_SAT:
            raise AmountOutOfRange(f"channel total exceeds 21e14 sat of {entry.asset}")


class ChannelView:
    """Both participants' public keys and the funding outpoint of one channel."""

    def __init__(self, params: ChannelParams, policy: ChannelPolicy) -> None:
        """``policy``: the backend's options now. The channel is built with the policy
        the opener's participant key carries, or with ``policy`` for a key written before
        keys carried one."""
        if len(params.assets) != 1 or params.assets[0] != Asset(params.chain, NATIVE_TOKEN):
            raise InvalidParams(f"a Bitcoin channel holds exactly {NATIVE_TOKEN}@{params.chain}")
        try:
            self.keys: tuple[ChannelPublicKeys, ChannelPublicKeys] = (
                parse_chain_key(params.participants[0].chain_key),
                parse_chain_key(params.participants[1].chain_key),
            )
            #: The opener's policy, which its key carries (the channel id commits to it).
            self.agreed = policy_in_key(params.participants[0].chain_key)
            policy_in_key(params.participants[1].chain_key)  # well formed, though unused
        except ValueError as exc:
            raise InvalidParams(f"bad Bitcoin participant key: {exc}") from exc
        self.params = params
        self.asset = params.assets[0]
        self.funding_txid = params.nonce.hex()
        self.funding_outpoint = OutPoint(self.funding_txid, FUNDING_OUTPUT)
        #: The backend's options now: what our own sweeps, penalties and HTLC spends may
        #: pay (``sweep_fees``), whatever policy the channel keeps for what both sign.
        self.configured = policy
        self.use_policy(self.agreed or policy)
        self.funding_script = bytes(
            funding_script(self.keys[0].funding_pubkey, self.keys[1].funding_pubkey)
        )
        self.funding_spk = bytes(p2wsh(self.funding_script))
        self.obscuring = obscuring_factor(
            self.keys[0].payment_basepoint, self.keys[1].payment_basepoint
        )

    def use_policy(self, policy: ChannelPolicy) -> None:
        """The fee policy the transactions both sides sign are built with (commitments,
        HTLC-success/timeout, the closing; the CSV delay): the backend's when the channel
        is first seen, then the one its record kept from its opening (a restart after the
        operator changed the backend's options). In place: authorities and contexts share
        this view."""
        self.policy = policy
        self.to_self_delay = to_self_delay(self.params, policy.block_interval)

    def sweep_fees(self) -> tuple[tuple[int, int], ...]:
        """(feerate per kw, fee cap) to try, in order, for a transaction only we sign: the
        higher of the channel's and the backend's options now first, so that an operator
        who raises the feerate speeds up the penalties and HTLC claims of channels opened
        before, which race the peer (and one who lowers it never makes them slower than at
        opening); then the channel's own, for what the raised one cannot pay (a fee above
        the cap, an HTLC output too small for it): a penalty is never refused for a fee
        the channel's rate would have paid."""
        channel, now = self.policy, self.configured
        raised = (
            max(channel.feerate_per_kw, now.feerate_per_kw),
            max(channel.max_fee_sat, now.max_fee_sat),
        )
        own = (channel.feerate_per_kw, channel.max_fee_sat)
        return (raised,) if raised == own else (raised, own)

    # --- scripts ------------------------------------------------------------------------

    def payout_spk(self, index: int) -> bytes:
        """Where closing outputs and to_remote pay participant ``index``."""
        return bytes(p2wpkh(self.keys[index].payment_basepoint))

    def commitment_keys(
        self, owner: int, point: bytes, secrets: KeySecrets | None = None
    ) -> CommitmentKeys:
        mine, theirs = self.keys[owner], self.keys[1 - owner]
        return CommitmentKeys.derive(
            point,
            local_delayed_payment_basepoint=mine.delayed_payment_basepoint,
            local_htlc_basepoint=mine.htlc_basepoint,
            remote_htlc_basepoint=theirs.htlc_basepoint,
            remote_revocation_basepoint=theirs.revocation_basepoint,
            remote_payment_basepoint=theirs.payment_basepoint,
            static_remotekey=True,
            secrets=secrets,
        )

    def key_secrets(
        self, owner: int, version: int, point: bytes, secrets: ChannelSecrets
    ) -> KeySecrets:
        """What ``secrets`` (one participant's) know behind ``owner``'s commitment keys."""
        if secrets.public == self.keys[owner]:
            own_point = secrets.commitment_point(version) == point
            return KeySecrets(
                per_commitment_secret=secrets.commitment_secret(version) if own_point else None,
                local_delayed_payment_basepoint_secret=secrets.delayed_payment_secret,
                local_htlc_basepoint_secret=secrets.htlc_secret,
            )
        if secrets.public == self.keys[1 - owner]:
            return KeySecrets(
                remote_htlc_basepoint_secret=secrets.htlc_secret,
                remote_revocation_basepoint_secret=secrets.revocation_secret,
            )
        raise ValueError("the secrets are neither participant's")

    def to_local_script(self, owner: int, point: bytes) -> bytes:
        keys = self.commitment_keys(owner, point)
        return bytes(
            to_local_script(keys.revocation_pubkey, self.to_self_delay, keys.local_delayed_pubkey)
        )

    def htlc_script(self, owner: int, point: bytes, htlc: Htlc) -> bytes:
        keys = self.commitment_keys(owner, point)
        if htlc.payer == owner:
            return bytes(
                offered_htlc_script(
                    keys.revocation_pubkey,
                    keys.local_htlc_pubkey,
                    keys.remote_htlc_pubkey,
                    htlc.payment_hash,
                )
            )
        return bytes(
            received_htlc_script(
                keys.revocation_pubkey,
                keys.local_htlc_pubkey,
                keys.remote_htlc_pubkey,
                htlc.payment_hash,
                htlc.native_expiry,
            )
        )

    # --- transactions -------------------------------------------------------------------

    def funding_amount(self, state: ChannelState) -> int:
        return state.total(self.asset)

    def bolt3_htlcs(self, owner: int, state: ChannelState) -> list[Bolt3Htlc]:
        return [
            Bolt3Htlc(
                offered=h.payer == owner,
                amount_msat=h.amount * 1000,
                payment_hash=h.payment_hash,
                cltv_expiry=h.native_expiry,
                htlc_id=h.id,
            )
            for h in state.htlcs
            if h.asset == self.asset
        ]

    def commitment(
        self,
        owner: int,
        state: ChannelState,
        point: bytes,
        secrets: ChannelSecrets | None = None,
    ) -> CommitmentTx:
        """``owner``'s commitment for ``state`` under its per-commitment ``point``.

        A participant passes its ``secrets`` to derive the keys faster (same transaction).
        """
        check_amounts(state)
        free = state.free(self.asset)
        key_secrets = (
            None if secrets is None else self.key_secrets(owner, state.version, point, secrets)
        )
        try:
            return build_commitment_tx(
                funding_outpoint=self.funding_outpoint,
                funding_amount_sat=self.funding_amount(state),
                local_funding_pubkey=self.keys[owner].funding_pubkey,
                remote_funding_pubkey=self.keys[1 - owner].funding_pubkey,
                commitment_number=state.version,
                obscuring_factor=self.obscuring,
                to_local_msat=free[owner] * 1000,
                to_remote_msat=free[1 - owner] * 1000,
                local_is_funder=owner == 0,
                feerate_per_kw=self.policy.feerate_per_kw,
                dust_limit_sat=self.policy.dust_limit_sat,
                to_self_delay=self.to_self_delay,
                keys=self.commitment_keys(owner, point, key_secrets),
                htlcs=self.bolt3_htlcs(owner, state),
                max_fee_sat=self.policy.max_fee_sat,
                require_affordable=True,
            )
        except (FeeTooHighError, UnaffordableFeeError) as exc:
            raise CommitmentFeeError(f"version {state.version}: {exc}") from exc
        except NoOutputError as exc:
            raise UnmineableState(f"version {state.version}: {exc}") from exc

    def closing(self, state: ChannelState) -> ClosingTx:
        """The one cooperative closing transaction of a final ``state`` (participant 0's view)."""
        check_amounts(state)
        free = state.free(self.asset)
        spk0, spk1 = self.payout_spk(0), self.payout_spk(1)
        try:
            return build_closing_tx(
                funding_outpoint=self.funding_outpoint,
                funding_amount_sat=self.funding_amount(state),
                local_funding_pubkey=self.keys[0].funding_pubkey,
                remote_funding_pubkey=self.keys[1].funding_pubkey,
                local_script_pubkey=spk0,
                remote_script_pubkey=spk1,
                to_local_msat=free[0] * 1000,
                to_remote_msat=free[1] * 1000,
                local_is_funder=True,
                fee_sat=closing_fee(self.policy.feerate_per_kw, spk0, spk1),
                dust_limit_sat=self.policy.dust_limit_sat,
                max_fee_sat=self.policy.max_fee_sat,
            )
        except (FeeTooHighError, UnaffordableFeeError) as exc:
            raise CommitmentFeeError(f"closing version {state.version}: {exc}") from exc
        except NoOutputError as exc:
            raise UnmineableState(f"closing version {state.version}: {exc}") from exc


__all__ = [
    "BLOCK_INTERVAL",
    "MAX_SAT",
    "ChannelPolicy",
    "ChannelView",
    "CommitmentFeeError",
    "channel_rules",
    "check_amounts",
    "to_self_delay",
]
