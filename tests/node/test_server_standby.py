"""PostgreSQL store: a standby process waits for the leader lease and takes over on a crash."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chenilles_hub.node.api.client import NodeClient

from . import postgres_schema, require_postgres
from .test_server_harness import AnvilChain, NodeProc, anvil, free_port, make_node, wait_for

pytestmark = [pytest.mark.node, pytest.mark.xdist_group("node-processes")]
__all__ = ["anvil"]


@pytest.fixture
def schema() -> Iterator[str]:
    yield from postgres_schema()


def _health(node: NodeProc) -> dict[str, str]:
    result: dict[str, str] = NodeClient(f"http://127.0.0.1:{node.api_port}", "-", 2).get("/health")
    return result


def test_a_standby_takes_over_when_the_leader_is_killed(
    anvil: AnvilChain, tmp_path: Path, schema: str
) -> None:
    dsn = require_postgres()
    # A lease far longer than the takeover may take: the standby takes it because the
    # killed leader's database connection is gone (migration 8), not by waiting it out.
    store = f'\n[store]\nkind = "postgres"\ndsn = "{dsn}"\nschema = "{schema}"\nlease_ttl = 60\n'
    primary = make_node(tmp_path, "primary", anvil, 0)
    primary.tail = store
    primary.name = "hub"
    standby = NodeProc(
        "hub",
        tmp_path / "standby",
        primary.identity,
        free_port(),
        free_port(),
        anvil,
        0,
        tail=store,
    )
    (standby.directory / "data").mkdir(parents=True)
    shutil.copy(primary.data_dir / "identity.seed", standby.data_dir / "identity.seed")
    try:
        primary.start()
        standby.start(wait=False)
        wait_for(lambda: _health(standby)["role"] == "standby", what="standby waits")
        time.sleep(2.5)  # the standby tries every second: a live leader keeps its lease
        assert _health(standby)["role"] == "standby"
        assert _health(primary)["role"] == "leader"
        primary.kill()
        took = standby.wait_ready(timeout=20)
        assert took < 10
        assert standby.api.get("/v1/info")["node_id"] == primary.node_id
    finally:
        primary.stop()
        standby.stop()
