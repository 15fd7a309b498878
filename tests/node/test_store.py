"""One behavioural suite for both stores: SQLite (a file) and PostgreSQL (a fresh schema)."""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import msgspec
import pytest

from chenilles_hub.core import (
    ChannelSnapshot,
    PendingProposal,
    Propose,
    WithdrawnProposal,
    decode_holdings,
    decode_snapshot,
    encode_holdings,
    encode_snapshot,
    holdings_of,
)
from chenilles_hub.core.model import Asset
from chenilles_hub.node.store.base import (
    Conflict,
    InvalidTransition,
    Invoice,
    NotFound,
    Payment,
    SchemaError,
    StoreLocked,
)
from chenilles_hub.node.store.migrations import MIGRATIONS, Migration
from chenilles_hub.node.store.sql import SqlStore
from chenilles_hub.node.store.sqlite import SQLiteStore
from tests.core.harness import ETH, NOW, TOKEN

from . import channel_record, machine_run, postgres_schema, require_postgres, synthetic_snapshot

pytestmark = pytest.mark.node

Opener = Callable[..., SqlStore]

EXTRA = Migration(
    MIGRATIONS[-1].version + 1,
    "test extra table",
    ("CREATE TABLE extra_test (x INTEGER)",),
    ("CREATE TABLE extra_test (x INTEGER)",),
)


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens (and re-opens, to simulate a restart) the same store; PostgreSQL stores take
    the leader lease as a restarted node would (``close`` released it)."""
    opened: list[SqlStore] = []
    if request.param == "sqlite":

        def open_sqlite(migrations: Sequence[Migration] = MIGRATIONS) -> SqlStore:
            store = SQLiteStore(tmp_path / "node.sqlite", migrations=migrations)
            opened.append(store)
            return store

        yield open_sqlite
    else:
        from chenilles_hub.node.store.postgres import PostgresStore

        dsn = require_postgres()
        schemas = postgres_schema()
        schema = next(schemas)

        def open_postgres(migrations: Sequence[Migration] = MIGRATIONS) -> SqlStore:
            store = PostgresStore(dsn, schema=schema, migrations=migrations)
            opened.append(store)
            assert store.acquire_lease("node", uuid.uuid4().hex, ttl=60)
            return store

        yield open_postgres
    for store in opened:
        store.close()
    if request.param == "postgres":
        schemas.close()  # drops the schema


@pytest.fixture
def store(opener: Opener) -> SqlStore:
    return opener()


CID = hashlib.sha256(b"store test channel").digest()


def h(preimage: bytes) -> bytes:
    return hashlib.sha256(preimage).digest()


# --- channels and snapshots -------------------------------------------------------------------


def test_snapshots_round_trip_exactly(store: SqlStore) -> None:
    record, disk = machine_run()
    store.add_channel(record)
    assert store.get_channel(record.channel_id) == record
    assert store.load_snapshot(record.channel_id) is None
    assert len(disk) > 10
    for raw in disk:
        snapshot = decode_snapshot(raw)
        store.save_snapshot(record.channel_id, snapshot)
        loaded = store.load_snapshot(record.channel_id)
        assert loaded == snapshot
        assert loaded is not None and encode_snapshot(loaded) == raw


def test_restart_reads_back_everything(opener: Opener) -> None:
    record, disk = machine_run()
    first = opener()
    first.add_channel(record)
    first.save_snapshot(record.channel_id, decode_snapshot(disk[-1]))
    first.add_revocation(record.channel_id, 3, b"rev3")
    duty = first.add_duty("dispute", record.channel_id, NOW + 10, b"payload")
    first.set_setting("alias", b"hub-1")
    first.close()
    second = opener()
    assert second.get_channel(record.channel_id) == record
    loaded = second.load_snapshot(record.channel_id)
    assert loaded is not None and encode_snapshot(loaded) == disk[-1]
    assert second.list_revocations(record.channel_id) == [(3, b"rev3")]
    assert [d.id for d in second.list_due(NOW + 10)] == [duty]
    assert second.get_setting("alias") == b"hub-1"
    assert second.schema_version() == MIGRATIONS[-1].version


def test_migrations_are_applied_once_and_checked(opener: Opener) -> None:
    opener().close()
    extended = (*MIGRATIONS, EXTRA)
    store = opener(extended)  # applies only the new one (re-running 1 would fail)
    assert store.schema_version() == EXTRA.version
    store.close()
    store = opener(extended)  # nothing to apply (re-running 2 would fail: table exists)
    with store._read() as cur:
        cur.execute("SELECT version, name FROM schema_migrations ORDER BY version")
        history = [(m.version, m.name) for m in (*MIGRATIONS, EXTRA)]
        assert [tuple(r) for r in cur.fetchall()] == history
    store.close()
    with pytest.raises(SchemaError):
        opener(MIGRATIONS)  # a database newer than the program
    renamed = (*MIGRATIONS, Migration(EXTRA.version, "something else", (), ()))
    with pytest.raises(SchemaError):
        opener(renamed)  # an edited history


def test_virtual_channel_records_have_their_own_table(store: SqlStore) -> None:
    """A checkpoint's ``virtual/...`` records go to ``virtual_channels`` (migration 2), in
    the same transaction as the other settings; rewriting one replaces it."""
    store.save_checkpoint([], {"virtual/ab": b"first", "alias": b"hub-1"})
    store.save_checkpoint([], {"virtual/ab": b"second", "virtual/cd": b"other"})
    assert store.virtual_records() == [b"second", b"other"]
    assert store.get_setting("virtual/ab") is None and store.get_setting("alias") == b"hub-1"


def test_a_checkpoint_deletes_the_settings_it_gives_none(store: SqlStore) -> None:
    """``None`` deletes a setting in the checkpoint's transaction (an expired quote leaves no
    row behind); a virtual channel's record is never deleted, and asking changes nothing."""
    store.save_checkpoint([], {"quote/aa": b"q1", "quote/bb": b"q2", "alias": b"hub"})
    store.save_checkpoint([], {"quote/aa": None, "quote/cc": b"q3", "quote/never": None})
    assert store.settings_with_prefix("quote/") == [("quote/bb", b"q2"), ("quote/cc", b"q3")]
    store.save_checkpoint([], {"virtual/ab": b"v"})
    with pytest.raises(ValueError, match="never deleted"):
        store.save_checkpoint([], {"virtual/ab": None, "quote/bb": None, "alias": b"other"})
    assert store.virtual_records() == [b"v"]
    assert store.get_setting("quote/bb") == b"q2" and store.get_setting("alias") == b"hub"


def test_a_relaxed_checkpoint_is_a_whole_transaction_like_any_other(store: SqlStore) -> None:
    """``durable=False`` only changes when the write reaches the disk (docs/security.md,
    "Relaxed writes"): its records are read back, a later durable write or ``sync`` runs,
    and the SQLite connection is back to ``synchronous=FULL`` for the next commit."""
    store.save_checkpoint([], {"alias": b"relaxed"}, durable=False)
    assert store.get_setting("alias") == b"relaxed"
    store.sync()
    store.save_checkpoint([], {"alias": b"durable"})
    assert store.get_setting("alias") == b"durable"
    if isinstance(store, SQLiteStore):
        assert store._conn is not None
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_channel_registry(store: SqlStore) -> None:
    other = hashlib.sha256(b"other").digest()
    store.add_channel(channel_record(CID))
    store.add_channel(channel_record(other))
    with pytest.raises(Conflict):
        store.add_channel(channel_record(CID))
    assert {r.channel_id for r in store.list_channels()} == {CID, other}
    store.set_channel_status(CID, "closing")
    assert [r.channel_id for r in store.list_channels("closing")] == [CID]
    assert store.get_channel(CID) == channel_record(CID).__replace__(status="closing")
    with pytest.raises(NotFound):
        store.set_channel_status(b"\x00" * 32, "closed")
    assert store.get_channel(b"\x00" * 32) is None


def test_snapshot_needs_a_registered_channel(store: SqlStore) -> None:
    with pytest.raises(Conflict):
        store.save_snapshot(CID, synthetic_snapshot(CID, 1))
    store.add_channel(channel_record(CID))
    with pytest.raises(ValueError):
        store.save_snapshot(b"\x01" * 32, synthetic_snapshot(CID, 1))


def test_batched_snapshots_are_all_or_nothing(store: SqlStore) -> None:
    ids = [hashlib.sha256(b"%d" % i).digest() for i in range(10)]
    for cid in ids:
        store.add_channel(channel_record(cid))
    store.save_snapshots([synthetic_snapshot(cid, 5) for cid in ids])
    assert all(store.load_snapshot(cid) == synthetic_snapshot(cid, 5) for cid in ids)
    unknown = hashlib.sha256(b"unknown").digest()
    batch = [synthetic_snapshot(cid, 6) for cid in ids] + [synthetic_snapshot(unknown, 6)]
    with pytest.raises(Conflict):
        store.save_snapshots(batch)
    assert all(store.load_snapshot(cid) == synthetic_snapshot(cid, 5) for cid in ids)
    with pytest.raises(ValueError):
        store.save_snapshots([synthetic_snapshot(ids[0], 7), synthetic_snapshot(ids[0], 8)])


def test_all_snapshots_load_at_once_as_one_by_one(store: SqlStore) -> None:
    ids = [hashlib.sha256(b"all %d" % i).digest() for i in range(6)]
    for cid in ids:
        store.add_channel(channel_record(cid))
    store.save_snapshots([synthetic_snapshot(cid, 3 + i) for i, cid in enumerate(ids[:5])])
    loaded = store.load_snapshots()
    assert set(loaded) == set(ids[:5])  # the sixth channel has no snapshot yet
    assert all(loaded[cid] == store.load_snapshot(cid) for cid in ids[:5])
    assert loaded == super(SqlStore, store).load_snapshots()  # the generic definition
    for cid in ids[:5]:  # what a restarted machine reads on its first use
        encoded = store.load_encoded_snapshot(cid)
        assert encoded is not None and decode_snapshot(encoded) == loaded[cid]
        assert encoded == super(SqlStore, store).load_encoded_snapshot(cid)
    assert store.load_encoded_snapshot(ids[5]) is None
    assert store.snapshot_index() == dict.fromkeys(ids[:5], False)


def with_withdrawn(snapshot: ChannelSnapshot) -> ChannelSnapshot:
    """``snapshot`` holding one withdrawn proposal (the store only carries it)."""
    assert snapshot.latest is not None
    signed = snapshot.latest
    pending = PendingProposal(Propose(snapshot.channel_id, (), signed.state, b"sig"), signed)
    return msgspec.structs.replace(
        snapshot, withdrawn=(WithdrawnProposal(pending, "too_late", "its timelock"),)
    )


def test_the_snapshot_index_says_which_snapshots_hold_withdrawn_proposals(
    store: SqlStore,
) -> None:
    """A restart reads this index, not the snapshots: a channel with a refusal to bury is
    restored at once, every other one reads its snapshot on first use."""
    a, b, c = (hashlib.sha256(b"index %d" % i).digest() for i in range(3))
    for cid in (a, b, c):
        store.add_channel(channel_record(cid))
    store.save_snapshots([synthetic_snapshot(a, 1), with_withdrawn(synthetic_snapshot(b, 1))])
    assert store.snapshot_index() == {a: False, b: True}  # c: nothing signed yet
    assert store.snapshot_index() == super(SqlStore, store).snapshot_index()
    store.save_checkpoint([synthetic_snapshot(b, 2), with_withdrawn(synthetic_snapshot(a, 2))], {})
    assert store.snapshot_index() == {a: True, b: False}
    store.save_checkpoint([synthetic_snapshot(a, 3)], {}, durable=False)
    assert store.snapshot_index() == {a: False, b: False}


def test_a_consistent_view_holds_what_the_separate_reads_return(store: SqlStore) -> None:
    """A backup's one read: every channel, the settings under its prefixes and every
    snapshot as stored, the same as the separate calls (and the generic composition)."""
    a, b, c = (hashlib.sha256(b"view %d" % i).digest() for i in range(3))
    for cid in (b, c, a):
        store.add_channel(channel_record(cid))
    store.save_checkpoint(
        [synthetic_snapshot(a, 2), with_withdrawn(synthetic_snapshot(b, 5))],
        {f"record/{a.hex()}/p": b"x", f"channel/{a.hex()}": b"m", "other": b"o"},
    )
    view = store.consistent_view(["channel/", "record/"])
    assert list(view.channels) == store.list_channels() and len(view.channels) == 3
    assert view.channels[1] == store.list_channels()[1]
    assert view.settings == store.settings_with_prefixes(["channel/", "record/"])
    assert view.snapshots == {
        cid: store.load_encoded_snapshot(cid) for cid in (a, b)
    }  # c: nothing signed yet
    generic = super(SqlStore, store).consistent_view(["channel/", "record/"])
    assert generic.channels == list(view.channels) and generic.snapshots == view.snapshots


def test_migration_4_flags_the_snapshots_already_stored(opener: Opener) -> None:
    """A store written before the flag existed gets it from each snapshot's bytes."""
    old = opener(MIGRATIONS[:3])
    a, b = (hashlib.sha256(b"old %d" % i).digest() for i in range(2))
    rows = [(a, synthetic_snapshot(a, 4)), (b, with_withdrawn(synthetic_snapshot(b, 4)))]
    for cid, snapshot in rows:
        old.add_channel(channel_record(cid))
        with old._write() as cur:  # as the program of schema 3 wrote it
            cur.execute(
                "INSERT INTO snapshots (channel_id, version, data) VALUES (?, ?, ?)",
                (cid, 4, encode_snapshot(snapshot)),
            )
    old.close()
    store = opener()
    assert store.schema_version() == MIGRATIONS[-1].version
    assert store.snapshot_index() == {a: False, b: True}
    assert all(store.load_snapshot(cid) == snapshot for cid, snapshot in rows)


def test_each_snapshot_keeps_its_holdings_and_older_rows_have_none(opener: Opener) -> None:
    """``snapshot_holdings``: what each stored snapshot's latest state holds per asset, as
    written with it (rewritten with it); rows of a schema before it have none (their
    channel then reads its snapshot when asked, as before)."""
    old = opener(MIGRATIONS[:4])
    a, b = (hashlib.sha256(b"holdings %d" % i).digest() for i in range(2))
    old.add_channel(channel_record(a))
    with old._write() as cur:  # as the program of schema 4 wrote it
        cur.execute(
            "INSERT INTO snapshots (channel_id, version, data, withdrawn) VALUES (?, ?, ?, 0)",
            (a, 4, encode_snapshot(synthetic_snapshot(a, 4))),
        )
    old.close()
    store = opener()
    assert store.schema_version() == MIGRATIONS[-1].version
    assert store.snapshot_holdings() == {}
    store.add_channel(channel_record(b))
    store.save_checkpoint([synthetic_snapshot(a, 5), synthetic_snapshot(b, 7)], {})
    store.save_checkpoint([synthetic_snapshot(b, 8)], {})
    found = store.snapshot_holdings()
    assert found == {
        cid: encode_holdings(synthetic_snapshot(cid, v)) for cid, v in ((a, 5), (b, 8))
    }
    assert decode_holdings(found[b]) == holdings_of(synthetic_snapshot(b, 8).latest.state)  # type: ignore[union-attr]
    generic = super(SqlStore, store).snapshot_holdings()
    assert generic == found
    with store._write() as cur:  # a program of schema 4 (a standby) rewrites b's snapshot
        cur.execute(
            "UPDATE snapshots SET version = ?, data = ? WHERE channel_id = ?",
            (9, encode_snapshot(synthetic_snapshot(b, 9)), b),
        )
    assert list(store.snapshot_holdings()) == [a]  # b's are of version 8: not handed out


def test_revocations_append_idempotently(store: SqlStore) -> None:
    store.add_channel(channel_record(CID))
    for version in (2, 0, 1):
        store.add_revocation(CID, version, b"rev%d" % version)
    store.add_revocation(CID, 1, b"a different one")  # the first is kept
    assert store.list_revocations(CID) == [(0, b"rev0"), (1, b"rev1"), (2, b"rev2")]
    assert store.list_revocations(b"\x00" * 32) == []
    with pytest.raises(Conflict):
        store.add_revocation(b"\x00" * 32, 0, b"x")


# --- watcher duties ---------------------------------------------------------------------------


def test_duties_come_due_in_deadline_order(store: SqlStore) -> None:
    other = b"\x02" * 32
    late = store.add_duty("refund", CID, NOW + 300, b"late")
    early = store.add_duty("claim", CID, NOW + 100, b"early", key="htlc-1")
    tie = store.add_duty("claim", other, NOW + 100, b"tie")
    future = store.add_duty("dispute", other, NOW + 10_000, b"future")
    assert store.add_duty("claim", CID, NOW + 999, b"again", key="htlc-1") == early
    assert store.list_due(NOW) == []
    assert [d.id for d in store.list_due(NOW + 100)] == [early, tie]
    assert [d.id for d in store.list_due(NOW + 500)] == [early, tie, late]
    assert [d.id for d in store.list_due(NOW + 500, limit=1)] == [early]
    due = store.list_due(NOW + 100)[0]
    assert (due.kind, due.channel_id, due.deadline, due.payload, due.key) == (
        "claim", CID, NOW + 100, b"early", "htlc-1",
    )  # fmt: skip
    store.complete_duty(early)
    store.complete_duty(early)  # idempotent
    store.complete_duty(late, "cancelled")
    with pytest.raises(InvalidTransition):
        store.complete_duty(early, "cancelled")
    with pytest.raises(NotFound):
        store.complete_duty(123456)
    assert [d.id for d in store.list_due(NOW + 10_000)] == [tie, future]
    assert [d.id for d in store.list_duties(channel_id=CID)] == [early, late]
    assert [d.id for d in store.list_duties(status="done")] == [early]
    assert [d.id for d in store.list_duties(channel_id=other, status="pending")] == [tie, future]


# --- payments, invoices, settings -------------------------------------------------------------


def test_payment_lifecycle(store: SqlStore) -> None:
    preimage = b"\x05" * 32
    big = 2**256 - 1
    incoming = Payment(h(preimage), "in", big, ETH, created_at=NOW)
    outgoing = Payment(h(preimage), "out", 990, TOKEN, created_at=NOW + 1)
    store.add_payment(incoming)
    store.add_payment(outgoing)
    with pytest.raises(Conflict):
        store.add_payment(incoming)
    assert store.get_payment(h(preimage), "in") == incoming.__replace__(updated_at=NOW)
    assert [p.direction for p in store.list_payments(status="pending")] == ["in", "out"]

    with pytest.raises(ValueError):
        store.settle_payment(h(preimage), "out", b"\x06" * 32, NOW + 2)
    settled = store.settle_payment(h(preimage), "out", preimage, NOW + 2)
    assert (settled.status, settled.preimage, settled.updated_at) == (
        "succeeded",
        preimage,
        NOW + 2,
    )
    assert store.settle_payment(h(preimage), "out", preimage, NOW + 3) == settled  # idempotent
    with pytest.raises(InvalidTransition):
        store.fail_payment(h(preimage), "out", "too late", NOW + 3)  # money already moved

    store.settle_payment(h(preimage), "in", preimage, NOW + 4)
    got = store.get_payment(h(preimage), "in")
    assert got is not None and got.amount == big and got.asset == ETH

    other = b"\x09" * 32
    store.add_payment(Payment(h(other), "out", 5, Asset("eip155:1", "0xabc"), created_at=NOW))
    failed = store.fail_payment(h(other), "out", "no route", NOW + 5)
    assert (failed.status, failed.failure, failed.preimage) == ("failed", "no route", None)
    with pytest.raises(InvalidTransition):
        store.settle_payment(h(other), "out", other, NOW + 6)
    with pytest.raises(NotFound):
        store.fail_payment(h(other), "in", "x", NOW)
    assert [p.status for p in store.list_payments(direction="out")] == ["failed", "succeeded"]
    with pytest.raises(InvalidTransition):
        store.add_payment(Payment(h(b"x"), "in", 1, ETH, created_at=NOW, status="succeeded"))
    with pytest.raises(ValueError):
        store.add_payment(Payment(h(b"x"), "in", 2**256, ETH, created_at=NOW))


def test_invoice_lifecycle(store: SqlStore) -> None:
    preimage = b"\x0a" * 32
    invoice = Invoice(h(preimage), 42, ETH, "coffee", NOW, NOW + 600, preimage=preimage)
    store.add_invoice(invoice)
    with pytest.raises(Conflict):
        store.add_invoice(invoice)
    with pytest.raises(ValueError):
        store.add_invoice(Invoice(h(b"y"), 1, ETH, "", NOW, NOW, preimage=b"z"))
    assert store.get_invoice(h(preimage)) == invoice
    paid = store.mark_invoice_paid(h(preimage), NOW + 5)
    assert (paid.status, paid.paid_at) == ("paid", NOW + 5)
    with pytest.raises(InvalidTransition):
        store.cancel_invoice(h(preimage))
    second = Invoice(h(b"q"), 7, TOKEN, "tea", NOW + 1, NOW + 60)
    store.add_invoice(second)
    assert store.cancel_invoice(h(b"q")).status == "cancelled"
    with pytest.raises(InvalidTransition):
        store.mark_invoice_paid(h(b"q"), NOW + 9)
    with pytest.raises(NotFound):
        store.mark_invoice_paid(h(b"nope"), NOW)
    assert [i.description for i in store.list_invoices()] == ["coffee", "tea"]
    assert [i.description for i in store.list_invoices("cancelled")] == ["tea"]


def test_settings(store: SqlStore) -> None:
    assert store.get_setting("fee_ppm") is None
    store.set_setting("fee_ppm", b"100")
    store.set_setting("fee_ppm", b"250")
    store.set_setting("blob", bytes(range(256)))
    assert store.get_setting("fee_ppm") == b"250"
    assert store.get_setting("blob") == bytes(range(256))


def test_settings_with_a_prefix_are_exactly_those_keys_in_order(store: SqlStore) -> None:
    keys = ["channel/b", "channel/a", "channel0", "channel.", "channels/x", "channe", "chan/é"]
    keys += ["channel/", "record/ab/part", "channel/\U0001f600"]
    for i, key in enumerate(keys):
        store.set_setting(key, b"%d" % i)
    found = store.settings_with_prefix("channel/")
    assert [k for k, _ in found] == sorted(k for k in keys if k.startswith("channel/"))
    assert dict(found)["channel/a"] == b"1"
    assert found == SqlStore.settings_with_prefix(store, "channel/")  # the generic query
    assert [k for k, _ in store.settings_with_prefix("chan/")] == ["chan/é"]
    prefixes = ["channel/", "record/", "chan", "quote/"]  # "chan" holds "channel/"
    together = store.settings_with_prefixes(prefixes)
    assert list(together) == prefixes
    for prefix in prefixes:  # each as asked alone (in no particular order)
        assert sorted(together[prefix]) == store.settings_with_prefix(prefix)
    assert together["quote/"] == [] and store.settings_with_prefixes([]) == {}
    generic = super(SqlStore, store).settings_with_prefixes(prefixes)
    assert {p: sorted(v) for p, v in together.items()} == generic


# --- SQLite specifics ---------------------------------------------------------------------------


def test_sqlite_is_wal_full_and_single_writer(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    with SQLiteStore(path) as store:
        with store._read() as cur:
            cur.execute("PRAGMA journal_mode")
            assert cur.fetchone()[0] == "wal"
            cur.execute("PRAGMA synchronous")
            assert cur.fetchone()[0] == 2  # FULL
        with pytest.raises(StoreLocked):
            SQLiteStore(path)
    SQLiteStore(path).close()  # the lock went with the first store
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_sqlite_commits_overwrite_a_wal_grown_at_open(tmp_path: Path) -> None:
    """The WAL is grown to its working size at open (rolled-back frames), so a durable
    commit overwrites it and its fsync need not put a new file size on disk: the file
    does not grow through a node's checkpoints, and nothing of the filler is in the
    database, before or after a crash (kill -9: the store is not closed)."""
    path = tmp_path / "node.sqlite"
    store = SQLiteStore(path)
    wal = Path(f"{path}-wal")
    reserved = wal.stat().st_size
    assert reserved >= 1_000 * 4096, "the WAL was not grown at open"
    db_size = path.stat().st_size
    record = channel_record(hashlib.sha256(b"wal").digest())
    store.add_channel(record)
    for version in range(50):
        store.save_checkpoint([synthetic_snapshot(record.channel_id, version)], {"k": b"v" * 3000})
    assert wal.stat().st_size == reserved, "commits appended to the WAL"
    assert path.stat().st_size == db_size, "the filler reached the database file"
    with sqlite3.connect(path) as raw:  # another reader, as after a kill -9
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master")}
        assert "_wal_reserve" not in tables
    store._conn = None  # what a kill -9 leaves: no checkpoint, no close
    store._lock_file.close()  # type: ignore[union-attr]
    store._lock_file = None
    with SQLiteStore(path) as again:
        latest = again.load_snapshot(record.channel_id)
        assert latest == synthetic_snapshot(record.channel_id, 49)


def test_sqlite_in_memory(tmp_path: Path) -> None:
    with SQLiteStore(":memory:") as store:
        store.add_channel(channel_record(CID))
        store.save_snapshot(CID, synthetic_snapshot(CID, 3))
        assert store.load_snapshot(CID) == synthetic_snapshot(CID, 3)
