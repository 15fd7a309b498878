"""Helpers shared by the node tests: realistic channel data and the PostgreSQL fixture."""

from __future__ import annotations

import functools
import hashlib
import os
import uuid
from collections.abc import Iterator

import pytest

from chenilles_hub.core import (
    AddHtlc,
    AssetBalances,
    ChannelSnapshot,
    ChannelState,
    Htlc,
    SettleHtlc,
    SignedState,
    Transfer,
    initial_state,
)
from chenilles_hub.node.store.base import ChannelRecord
from tests.core.harness import ETH, NOW, TOKEN, Pair, make_keys, make_params

PG_DSN = os.environ.get(
    "CHENILLES_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/chenilles_test"
)


def channel_record(channel_id: bytes) -> ChannelRecord:
    params = make_params(make_keys(0))
    initial = initial_state(channel_id, params.assets, {ETH: (1000, 1000), TOKEN: (50, 0)})
    return ChannelRecord(channel_id, params, 0, initial)


def machine_run() -> tuple[ChannelRecord, list[bytes]]:
    """Alice's channel record and every snapshot her machine persisted (encoded, in order)
    over an opening, payments both ways and an HTLC added then settled, with revocations."""
    pair = Pair.create(revoking=True)
    pair.act(0, lambda m: m.open())
    pair.deliver_all()
    for payer, amount in [(0, 10), (1, 3), (0, 7)]:
        pair.act(payer, lambda m, a=amount: m.propose((Transfer(ETH, a),), NOW))
        pair.deliver_all()
    preimage = b"\x07" * 32
    htlc = Htlc(1, 0, ETH, 100, hashlib.sha256(preimage).digest(), NOW + 7200, NOW + 7000)
    pair.act(0, lambda m: m.propose((AddHtlc(htlc),), NOW))
    pair.deliver_all()
    pair.act(1, lambda m: m.propose((SettleHtlc(1, preimage),), NOW))
    pair.deliver_all()
    machine = pair.alice.machine
    record = ChannelRecord(machine.channel_id, machine.params, 0, machine.initial)
    return record, pair.alice.disk


def synthetic_snapshot(channel_id: bytes, version: int, htlcs: int = 4) -> ChannelSnapshot:
    """A deterministic snapshot of a given version (not validly signed: the store does not
    care), about the size of a busy channel's: a few HTLCs and two 64-byte signatures."""
    locks = tuple(
        Htlc(i, i % 2, ETH, 10 + i, hashlib.sha256(b"%d" % i).digest(), NOW + i, NOW + i)
        for i in range(htlcs)
    )
    state = ChannelState(
        channel_id,
        version,
        (AssetBalances(ETH, (1000 + version, 1000)), AssetBalances(TOKEN, (50, 0))),
        locks,
    )
    sig = hashlib.sha512(b"%d" % version).digest()
    return ChannelSnapshot(channel_id, SignedState(state, (sig, sig)), None, None, None, None)


@functools.cache
def _postgres_problem() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]')"
    try:
        psycopg.connect(PG_DSN, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL unreachable at {PG_DSN} ({exc}); run scripts/ensure_postgres.sh"
    return None


def require_postgres() -> str:
    """The test DSN; skip without a server, or fail if CHENILLES_REQUIRE_POSTGRES=1."""
    problem = _postgres_problem()
    if problem is not None:
        if os.environ.get("CHENILLES_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"CHENILLES_REQUIRE_POSTGRES=1 but {problem}", pytrace=False)
        pytest.skip(problem)
    return PG_DSN


def postgres_schema() -> Iterator[str]:
    """A fresh schema per test (parallel workers share the database), dropped afterwards."""
    import psycopg

    dsn = require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    try:
        yield schema
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
