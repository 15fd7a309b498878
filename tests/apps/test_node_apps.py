"""App channels through the node (in-process network, real embedded ledgers): opened with
an app and its opening state, played move by move, shown to the operator, closed, and
disputed when a peer stops answering, on EVM and Solana; refused at open on Bitcoin."""

from __future__ import annotations

import msgspec
import pytest
from chenilles_app_escrow import rules as escrow
from chenilles_app_tictactoe import rules as ttt

from chenilles_hub.backend import ChainBackend
from chenilles_hub.core import Asset, SignedState
from chenilles_hub.core.errors import ChannelError, InvalidParams, InvalidTransition
from chenilles_hub.node.hub.node import Node
from tests.circuit.world import World, confirm

from .onchain import DURATION

pytestmark = [pytest.mark.apps]

STAKE = 10**6
#: X (participant 0, the opener) wins with the 9th move (see test_forced_moves.GAME)
GAME = [(0, 0), (1, 1), (0, 2), (1, 3), (0, 4), (1, 5), (0, 7), (1, 6), (0, 8)]


def open_game(world: World, a: Node, b: Node, chain: str) -> bytes:
    asset = Asset(chain, "native")
    before = set(a.channels)
    a.open_channel(
        b.node_id, chain, {asset: (STAKE, STAKE)}, DURATION, "tictactoe", ttt.Game.new(0).encode()
    )
    world.network.run()
    (cid,) = set(a.channels) - before
    confirm(world)  # the chain must show the deposits at depth before either side trusts them
    assert a.channels[cid].active and b.channels[cid].active
    return cid


def pair(backend: ChainBackend) -> tuple[World, Node, Node]:
    world = World({backend.chain: backend}, backend)
    return world, world.node("alice", [backend.chain]), world.node("bob", [backend.chain])


def play(world: World, nodes: tuple[Node, Node], cid: bytes, moves: list[tuple[int, int]]) -> None:
    for who, cell in moves:
        nodes[who].app_move(cid, bytes([cell]))
        world.network.run()


def test_a_whole_game_through_the_node_then_a_cooperative_close(backend: ChainBackend) -> None:
    world, alice, bob = pair(backend)
    cid = open_game(world, alice, bob, backend.chain)
    asset = Asset(backend.chain, "native")
    start = [backend.balance(n.accounts[backend.chain], asset) for n in (alice, bob)]
    paid_before = [len(n.channels[cid].receipts) for n in (alice, bob)]
    status = alice.app_status(cid)
    assert status["my_turn"] and status["turn"] == [0] and status["state"]["moves"] == 0
    assert not bob.app_status(cid)["my_turn"]
    with pytest.raises(InvalidTransition):  # bob out of turn: refused at once, nothing sent
        bob.app_move(cid, b"\x04")
    for who, cell in GAME[:-1]:
        play(world, (alice, bob), cid, [(who, cell)])
        assert alice.channels[cid].machine.latest == bob.channels[cid].machine.latest
    with pytest.raises(InvalidTransition):  # an occupied cell
        alice.app_move(cid, b"\x00")
    play(world, (alice, bob), cid, GAME[-1:])
    status = bob.app_status(cid)
    assert status["over"] and status["state"]["winner"] == 0 and not status["my_turn"]
    assert status["state"]["board"] == ["XOX", "OXO", "OXX"]
    alice.close(cid)
    world.network.run()
    world.sync()
    assert alice.channels[cid].status == "closed" and bob.channels[cid].status == "closed"
    gains = []
    for i, n in enumerate((alice, bob)):
        fees = sum(r.fee + r.rent for r in n.channels[cid].receipts[paid_before[i] :])
        gains.append(backend.balance(n.accounts[backend.chain], asset) - start[i] + fees)
    assert gains == [2 * STAKE, 0]  # the winner takes the pot, to the wei / lamport


def test_a_silent_peer_on_its_turn_loses_on_chain(backend: ChainBackend) -> None:
    world, alice, bob = pair(backend)
    cid = open_game(world, alice, bob, backend.chain)
    alice.app_channels.answer_timeout = 50
    play(world, (alice, bob), cid, GAME[:3])  # X (alice) moved last
    world.network.silence(bob)
    world.sync()  # a tick: alice's node notes that bob is on his turn
    world.advance(60)  # ... unplayed for longer than the answer timeout
    assert alice.channels[cid].status == "disputed"
    onchain = alice.app_status(cid)["onchain"]
    assert onchain is not None and onchain["turn"] == [1] and onchain["version"] == 3
    for _ in range(3):
        world.advance(DURATION)
    assert alice.channels[cid].status == "closed"
    assert alice.channels[cid].receipts  # register, conclude, withdraw
    dispute = backend.app_dispute(alice.channels[cid].params)
    assert dispute is not None and dispute.phase == "concluded"
    assert dispute.state.balances[0].amounts == (2 * STAKE, 0)


def test_a_move_the_peer_does_not_answer_is_forced_on_chain(backend: ChainBackend) -> None:
    world, alice, bob = pair(backend)
    cid = open_game(world, alice, bob, backend.chain)
    play(world, (alice, bob), cid, GAME[:4])  # bob (O) moved last: alice's turn
    alice.app_channels.answer_timeout = 50
    world.network.silence(bob)
    alice.app_move(cid, bytes([GAME[4][1]]))  # proposed; bob never answers
    world.sync()
    world.advance(60)
    assert alice.channels[cid].status == "disputed"
    assert cid in alice.app_channels.forced
    world.advance(DURATION)  # the refutation period is over: the move is forced
    dispute = backend.app_dispute(alice.channels[cid].params)
    assert dispute is not None and dispute.phase == "forced" and dispute.state.version == 5
    for _ in range(2):
        world.advance(DURATION)
    dispute = backend.app_dispute(alice.channels[cid].params)
    assert dispute is not None and dispute.phase == "concluded"
    assert dispute.state.balances[0].amounts == (2 * STAKE, 0)
    assert alice.channels[cid].status == "closed"


def test_the_operator_moves_on_chain_during_a_dispute(backend: ChainBackend) -> None:
    """Bob registers (his peer is slow); it is alice's turn: her move through the node is
    forced on-chain in its window; then bob's is, and so on until bob stops."""
    world, alice, bob = pair(backend)
    cid = open_game(world, alice, bob, backend.chain)
    play(world, (alice, bob), cid, GAME[:2])
    bob.force_close(cid)
    world.sync()
    assert alice.channels[cid].status == "disputed"
    alice.app_move(cid, bytes([GAME[2][1]]))  # too early: waits for its window
    world.advance(DURATION + 1)
    dispute = backend.app_dispute(alice.channels[cid].params)
    assert dispute is not None and dispute.phase == "forced" and dispute.state.version == 3
    status = bob.app_status(cid)["onchain"]
    assert status is not None and status["my_turn"]
    bob.app_move(cid, bytes([GAME[3][1]]))
    world.sync()
    dispute = backend.app_dispute(alice.channels[cid].params)
    assert dispute is not None and dispute.state.version == 4
    for _ in range(3):
        world.advance(DURATION)
    assert dispute.state.balances[0].amounts == (0, 2 * STAKE)
    assert backend.app_dispute(alice.channels[cid].params).phase == "concluded"


def test_a_stale_forced_move_is_answered_by_the_watcher(backend: ChainBackend) -> None:
    """Bob registers an old state (he kept it: both signed it at the time) while alice is
    away, then forces another move from it; back online, alice's watcher answers with the
    latest state both signed, and the channel pays that game's outcome."""
    world, alice, bob = pair(backend)
    cid = open_game(world, alice, bob, backend.chain)
    play(world, (alice, bob), cid, GAME[:5])
    channel = bob.channels[cid]
    old = both_signed(alice, bob, cid, replay(channel.params, channel.machine.initial, 1))
    world.network.silence(alice)
    backend.register(channel.params, old, channel.account)
    backend.advance_time(DURATION + 1)
    cheat = replay(channel.params, old.state, 0, extra=(1, 8))
    bob_sig = backend.authority(channel.params, channel.account, 1).sign(
        channel.params, cheat, None
    )
    backend.force_move(channel.params, SignedState(cheat, (b"", bob_sig)), 1, channel.account)
    world.network.revive(alice)
    world.sync()  # alice's watcher sees the forced move and answers with version 5
    dispute = backend.app_dispute(channel.params)
    assert dispute is not None and dispute.state.version == 5
    for _ in range(3):
        world.advance(DURATION)
    dispute = backend.app_dispute(channel.params)
    assert dispute is not None and dispute.phase == "concluded"
    assert dispute.state.balances[0].amounts == (2 * STAKE, 0)


def test_a_take_back_forced_on_chain_is_answered_with_the_move_both_signed(
    backend: ChainBackend,
) -> None:
    """Bob's last move (version 4, both signed) looks bad to him: he registers version 3
    and forces another move of his as version 4. Alice holds the real version 4: the same
    version, another move. Her watcher answers with it."""
    world, alice, bob = pair(backend)
    cid = open_game(world, alice, bob, backend.chain)
    play(world, (alice, bob), cid, GAME[:4])
    channel = bob.channels[cid]
    v3 = both_signed(alice, bob, cid, replay(channel.params, channel.machine.initial, 3))
    world.network.silence(alice)
    backend.register(channel.params, v3, channel.account)
    backend.advance_time(DURATION + 1)
    take_back = replay(channel.params, v3.state, 0, extra=(1, 8))
    bob_sig = backend.authority(channel.params, channel.account, 1).sign(
        channel.params, take_back, None
    )
    backend.force_move(channel.params, SignedState(take_back, (b"", bob_sig)), 1, channel.account)
    world.network.revive(alice)
    world.sync()
    dispute = backend.app_dispute(channel.params)
    latest = alice.channels[cid].machine.latest
    assert dispute is not None and latest is not None
    assert dispute.state == latest.state and dispute.phase == "registered"


def replay(params, state, moves: int, extra: tuple[int, int] | None = None):  # type: ignore[no-untyped-def]
    """``state`` after the game's next ``moves`` moves (and one ``extra`` (who, cell))."""
    rules = ttt.TicTacToe()
    steps = GAME[state.version : state.version + moves] + ([extra] if extra else [])
    for who, cell in steps:
        after = rules.apply(params, state, who, bytes([cell]))
        state = msgspec.structs.replace(after, version=state.version + 1)
    return state


def both_signed(a: Node, b: Node, cid: bytes, state) -> SignedState:  # type: ignore[no-untyped-def]
    sigs: list[bytes] = [b"", b""]
    for node in (a, b):
        c = node.channels[cid]
        sigs[c.me] = c.backend.authority(c.params, c.account, c.me).sign(c.params, state, None)
    return SignedState(state, (sigs[0], sigs[1]))


def test_the_acceptor_refuses_what_it_cannot_run(backend: ChainBackend) -> None:
    world, alice, bob = pair(backend)
    asset = Asset(backend.chain, "native")
    bob.ctx.apps.pop("escrow")  # bob does not run escrows
    terms = escrow.Escrow(escrow.LOCKED, 0, 10**10, 5, bytes(32), bytes(32)).encode()
    temp = alice.open_channel(
        bob.node_id, backend.chain, {asset: (10, 0)}, DURATION, "escrow", terms
    )
    world.network.run()
    assert "not installed" in str(alice.open_results[temp])
    with pytest.raises(InvalidParams, match="same"):  # unequal stakes: refused before asking
        alice.open_channel(
            bob.node_id,
            backend.chain,
            {asset: (10, 9)},
            DURATION,
            "tictactoe",
            ttt.Game.new(0).encode(),
        )
    with pytest.raises(InvalidParams, match="not installed"):
        alice.open_channel(bob.node_id, backend.chain, {asset: (10, 10)}, DURATION, "chess", b"")
    assert not alice.channels and not bob.channels


def test_an_escrow_released_off_chain(backend: ChainBackend) -> None:
    world, alice, bob = pair(backend)
    asset = Asset(backend.chain, "native")
    terms = escrow.Escrow(
        escrow.LOCKED,
        0,
        backend.now() + 10**5,
        400,
        escrow.sha256(b"r" * 32),
        escrow.sha256(b"f" * 32),
    )
    alice.open_channel(
        bob.node_id, backend.chain, {asset: (1000, 0)}, DURATION, "escrow", terms.encode()
    )
    world.network.run()
    (cid,) = alice.channels
    confirm(world)
    assert alice.app_status(cid)["turn"] == [0, 1]
    with pytest.raises(ChannelError):  # the seller cannot release the buyer's money
        bob.app_move(cid, b"\x01")
    bob.app_move(cid, b"\x03" + b"r" * 32)  # the seller shows the arbiter's release ruling
    world.network.run()
    assert alice.app_status(cid)["state"]["status"] == "released"
    assert alice.channels[cid].machine.state.balances[0].amounts == (600, 400)


def test_an_app_channel_on_bitcoin_is_refused_at_open() -> None:
    from chenilles_bitcoin.backend import embedded_backend

    btc = embedded_backend()
    world = World({btc.chain: btc}, btc)
    alice, bob = world.node("alice", [btc.chain]), world.node("bob", [btc.chain])
    asset = Asset(btc.chain, "native")
    with pytest.raises(InvalidParams, match="enforces no app rules"):
        alice.open_channel(
            bob.node_id,
            btc.chain,
            {asset: (10**5, 10**5)},
            DURATION,
            "tictactoe",
            ttt.Game.new(0).encode(),
        )
    assert not alice.channels and not alice.pending_opens
