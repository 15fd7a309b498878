"""Electrum channels built from keys, as Electrum's own tests build them (its public
``electrum/tests/test_lnchannel.py``): a funded, open channel without a funding
transaction or a chain, and the per-state commitment work measured on its own. Used by
``scripts/electrum_peer_bench.py`` under the system Python with Debian's python3-electrum.
"""

from __future__ import annotations

import os
import time
from typing import Any, Protocol

from electrum import bitcoin, lnpeer, lnutil
from electrum.bitcoin import COIN
from electrum.coinchooser import PRNG
from electrum.ecc import ECPrivkey
from electrum.json_db import StoredDict
from electrum.lnchannel import Channel, ChannelState
from electrum.lnutil import LOCAL, REMOTE, Keypair, UpdateAddHtlc

CHANNEL_MSAT = 10 * COIN * 1000  # 10 BTC each side: never runs dry during a benchmark


class Holder(Protocol):
    """Where a channel's state lives (a node's wallet db, or nowhere)."""

    def holds(self, state: dict) -> Any: ...


def keypair(secret: bytes | None = None) -> Keypair:
    priv = secret or ECPrivkey.generate_random_key().get_secret_bytes()
    return Keypair(pubkey=lnutil.privkey_to_pubkey(priv), privkey=priv)


def _config_pair(
    seed: bytes,
    keys: list[Keypair],
    other: list[Keypair],
    me_first: bool,
    local_msat: int,
    remote_msat: int,
    first_point: bytes,
    node: bytes,
    funding: tuple[str, int],
) -> dict:
    """One side's stored channel state, as a funded channel would have it."""
    cid, _ = lnpeer.channel_id_from_funding_tx(*funding)
    common = dict(
        max_htlc_value_in_flight_msat=CHANNEL_MSAT,
        max_accepted_htlcs=30,
        reserve_sat=0,
        htlc_minimum_msat=1,
        upfront_shutdown_script=b"",
    )
    names = (
        "payment_basepoint",
        "multisig_key",
        "htlc_basepoint",
        "delayed_basepoint",
        "revocation_basepoint",
    )
    remote = lnutil.RemoteConfig(
        **{n: lnutil.OnlyPubkeyKeypair(k.pubkey) for n, k in zip(names, other, strict=True)},
        to_self_delay=144 if me_first else 145,
        dust_limit_sat=546,
        initial_msat=remote_msat,
        next_per_commitment_point=first_point,
        current_per_commitment_point=None,
        **common,
    )
    local = lnutil.LocalConfig(
        **dict(zip(names, keys, strict=True)),
        channel_seed=None,
        per_commitment_secret_seed=seed,
        to_self_delay=145 if me_first else 144,
        dust_limit_sat=546,
        initial_msat=local_msat,
        funding_locked_received=True,
        was_announced=False,
        current_commitment_signature=None,
        current_htlc_signatures=None,
        **common,
    )
    return {
        "channel_id": cid.hex(),
        "short_channel_id": cid[:8],
        "funding_outpoint": lnpeer.Outpoint(*funding),
        "remote_config": remote,
        "local_config": local,
        "constraints": lnutil.ChannelConstraints(
            capacity=(local_msat + remote_msat) // 1000,
            is_initiator=me_first,
            funding_txn_minimum_depth=3,
        ),
        "node_id": node.hex(),
        "onion_keys": {},
        "data_loss_protect_remote_pcp": {},
        "state": "PREOPENING",
        "log": {},
        "fail_htlc_reasons": {},
        "unfulfilled_htlcs": {},
        "revocation_store": {},
        "channel_type": lnutil.ChannelType.OPTION_STATIC_REMOTEKEY,
    }


def channel_pair(
    a: Keypair, b: Keypair, name: str, wallets: tuple[Holder, Holder] | None = None
) -> tuple[Channel, Channel]:
    """Two sides of one open channel between nodes ``a`` and ``b``, first commitment signed."""
    rng = PRNG(os.urandom(32))
    funding = (rng.get_bytes(32).hex(), 0)
    basepoints = [[keypair() for _ in range(5)] for _ in range(2)]
    seeds = [rng.get_bytes(32), rng.get_bytes(32)]
    start = lnutil.RevocationStore.START_INDEX

    def point(i: int, n: int) -> bytes:
        secret = lnutil.get_per_commitment_secret_from_seed(seeds[i], start - n)
        return lnutil.secret_to_pubkey(int.from_bytes(secret, "big"))

    half = CHANNEL_MSAT
    sides = []
    for i, (node, me) in enumerate(((b, True), (a, False))):
        state = _config_pair(
            seeds[i],
            basepoints[i],
            basepoints[1 - i],
            me,
            half,
            half,
            point(1 - i, 0),
            node.pubkey,
            funding,
        )
        held = wallets[i].holds(state) if wallets else StoredDict(state, None, [])
        sides.append(Channel(held, name=f"{name}{i}", initial_feerate=2500))
    x, y = sides
    for c in sides:
        c.hm.log[LOCAL]["ctn"] = 0
        c._state = ChannelState.OPEN
    sig_y, _ = y.sign_next_commitment()
    sig_x, _ = x.sign_next_commitment()
    x.open_with_first_pcp(point(1, 0), sig_y)
    y.open_with_first_pcp(point(0, 0), sig_x)
    x.config[REMOTE].next_per_commitment_point = point(1, 1)
    y.config[REMOTE].next_per_commitment_point = point(0, 1)
    for c in sides:
        addr = c.config[LOCAL].payment_basepoint.pubkey.hex()
        c._fallback_sweep_address = bitcoin.pubkey_to_address("p2wpkh", addr)
        c._state = ChannelState.FUNDED
    return x, y


def commitment_rounds(n: int) -> list[float]:
    """ms per state, both sides: with 2 HTLCs (one each way) in the channel, each side signs
    the other's next commitment (and its HTLC transactions), the other verifies it, revokes
    its previous commitment and the signer checks that revocation: what one version of a
    Chenilles Bitcoin channel costs (both commitments of a version signed, both revoked)."""
    a, b = channel_pair(keypair(), keypair(), "s")
    for c in (a, b):
        c._state = ChannelState.OPEN
    for payer, payee in ((a, b), (b, a)):
        h = UpdateAddHtlc(
            amount_msat=50_000_000, payment_hash=os.urandom(32), cltv_expiry=500, timestamp=0
        )
        h = payer.add_htlc(h)
        payee.receive_htlc(h)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        for x, y in ((a, b), (b, a)):
            sig, htlc_sigs = x.sign_next_commitment()
            y.receive_new_commitment(sig, htlc_sigs)
            rev = y.revoke_current_commitment()
            x.receive_revocation(rev)
        out.append((time.perf_counter() - t0) * 1e3)
        assert len(a.get_latest_commitment(LOCAL).outputs()) == 4  # to_local, to_remote, 2 HTLCs
    return out
