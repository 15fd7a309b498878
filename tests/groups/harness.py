"""Virtual channels over real ledger channels on a real chain (EVM on eth-tester).

Three processes, in one test process: Alice, the hub, Bob. Two ledger channels of the
``virtual`` app, L_A = (Alice, hub) and L_B = (hub, Bob), deposited on-chain; a virtual
channel V = (Alice, Bob) whose states are signed by Alice's and Bob's ledger keys. Every
off-chain update runs the core's ``ChannelMachine`` on both sides, messages delivered in
process; every on-chain action goes through the ``ChainBackend`` API and is sent by a
relayer, so the participants' balances change by exactly what the channels pay them.

The breakdown is driven by the core's duties (``hub_duties``, ``end_duties``): a watch loop
reads each ledger channel's dispute from the chain, asks the core what to do, and does it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any

from chenilles_app_virtual import protocol, rules
from chenilles_app_virtual.authority import VirtualAuthority

from chenilles_hub import apps
from chenilles_hub.backend import AppDispute, ChainBackend
from chenilles_hub.core import (
    AppMove,
    Asset,
    AssetBalances,
    ChannelMachine,
    ChannelParams,
    ChannelState,
    Participant,
    Send,
    SignedState,
    Transfer,
    Update,
)
from chenilles_hub.core.updates import Close
from chenilles_hub.core.virtual import (
    Duty,
    Heartbeat,
    LedgerTerms,
    LedgerView,
    Register,
    ShowVState,
    VirtualTerms,
    end_duties,
    hub_duties,
    virtual_channel_id,
    virtual_initial,
    virtual_params,
)

DURATION = 100  # the ledger channels' challenge period (seconds)
LIFETIME = 300  # V's deadline, from its open
GRACE = 120
MARGIN = 30  # a heartbeat goes this long before the period closes
DEPOSIT = 10**9
CAPACITY = (3 * 10**8, 2 * 10**8)  # V's opening split: Alice, Bob


def node_id(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def make_backend() -> ChainBackend:
    from chenilles_evm.backend import embedded_backend

    backend: ChainBackend = embedded_backend()
    plugin = next(p for p in apps.installed_apps() if p.info.name == rules.APP_ID)
    backend.use_app(rules.APP_ID, code=plugin.onchain_code(backend.info.family))
    return backend


class Link:
    """Two machines of one channel, messages delivered in process, in order."""

    def __init__(self, machines: tuple[ChannelMachine, ChannelMachine], now: Any) -> None:
        self.machines = machines
        self.now = now
        self._deliver(0, machines[0].open())

    def run(self, proposer: int, updates: tuple[Update, ...]) -> SignedState:
        """Propose ``updates`` as ``proposer`` and deliver until both hold the new state."""
        self._deliver(proposer, self.machines[proposer].propose(updates, self.now()))
        latest = self.machines[proposer].latest
        assert latest is not None and latest == self.machines[1 - proposer].latest
        return latest

    def _deliver(self, sender: int, effects: list[Any]) -> None:
        queue = [(1 - sender, e) for e in effects]
        while queue:
            to, effect = queue.pop(0)
            if isinstance(effect, Send):
                queue.extend(
                    (1 - to, e) for e in self.machines[to].receive(effect.message, self.now())
                )

    @property
    def latest(self) -> SignedState:
        latest = self.machines[0].latest
        assert latest is not None
        return latest


@dataclass
class Ledger:
    """One ledger channel of the ``virtual`` app, deposited on-chain by both members."""

    backend: ChainBackend
    params: ChannelParams
    accounts: tuple[Any, Any]
    link: Link

    @property
    def channel_id(self) -> bytes:
        return self.backend.channel_id(self.params)

    @property
    def state(self) -> ChannelState:
        return self.link.latest.state

    def propose(self, who: int, *moves: AppMove) -> SignedState:
        return self.link.run(who, moves)

    def view(self, d: AppDispute | None) -> LedgerView:
        """What the chain says about this ledger channel (``d``), as the core reads it."""
        if d is None:
            return protocol.view("open", 0, self.state)
        if d.phase == "concluded":
            return protocol.view("concluded", d.conclude_at, d.state)
        if d.phase == "registered":
            return protocol.view("dispute", d.move_from, d.state)
        return protocol.view("forced", d.move_until, d.state)

    def onchain_state(self) -> ChannelState:
        d = self.backend.app_dispute(self.params)
        assert d is not None
        return d.state


@dataclass
class World:
    """Alice, the hub and Bob with their two ledger channels on one EVM chain."""

    backend: ChainBackend
    alice: Any
    hub: Any
    bob: Any
    relayer: Any
    la: Ledger
    lb: Ledger
    start: dict[str, int] = field(default_factory=dict)

    @property
    def native(self) -> Asset:
        return Asset(self.backend.chain, "native")

    def balance(self, who: str) -> int:
        return self.backend.balance(getattr(self, who), self.native)

    # what a world on two chains (crosschain.py) answers differently
    def now(self) -> int:
        return self.backend.now()

    def advance_time(self, seconds: int) -> None:
        self.backend.advance_time(seconds)

    def relayer_of(self, lg: Ledger) -> Any:
        """Who sends (and pays for) the on-chain actions in ledger channel ``lg``."""
        return self.relayer

    def v_keys(self) -> tuple[bytes, bytes]:
        """Alice's and Bob's V keys (secp256k1): here their ledger keys."""
        return self.alice.key, self.bob.key

    def gained(self) -> dict[str, int]:
        return {w: self.balance(w) - self.start[w] for w in ("alice", "hub", "bob")}

    def block(self) -> int:
        return int(self.backend.w3.eth.block_number)  # type: ignore[attr-defined]

    def transactions_since(self, block: int) -> int:
        """Transactions the chain included after ``block``: the count the tests assert."""
        w3 = self.backend.w3  # type: ignore[attr-defined]
        return sum(
            len(w3.eth.get_block(n)["transactions"]) for n in range(block + 1, self.block() + 1)
        )


def ledger(
    backend: ChainBackend,
    members: tuple[Any, Any],
    names: tuple[str, str],
    v_keys: dict[int, bytes] | None = None,
) -> Ledger:
    """One ledger channel of ``members``; ``v_keys`` (member index -> V private key) are the
    V keys its members declared where they are not their ledger keys (Solana)."""
    nonce = secrets.token_bytes(32)
    params = ChannelParams(
        chain=backend.chain,
        participants=tuple(
            Participant(backend.participant_key(a, nonce), node_id(n))
            for a, n in zip(members, names, strict=True)
        ),
        assets=(Asset(backend.chain, "native"),),
        challenge_duration=DURATION,
        nonce=nonce,
        app=rules.APP_ID,
    )
    cid = backend.channel_id(params)
    initial = ChannelState(
        channel_id=cid,
        version=0,
        balances=(AssetBalances(Asset(backend.chain, "native"), (DEPOSIT, DEPOSIT)),),
    )
    declared = {
        params.participants[i].chain_key: rules.address_of(k) for i, k in (v_keys or {}).items()
    }
    app = {rules.APP_ID: rules.VirtualLedgerApp(declared)}
    machines = tuple(
        ChannelMachine(params, cid, i, backend.authority(params, a, i), initial, apps=app)
        for i, a in enumerate(members)
    )
    return Ledger(backend, params, members, Link((machines[0], machines[1]), backend.now))


def world(backend: ChainBackend) -> World:
    alice, hub, bob, relayer = (backend.create_account() for _ in range(4))
    la = ledger(backend, (alice, hub), ("alice", "hub"))
    lb = ledger(backend, (hub, bob), ("hub", "bob"))
    native = Asset(backend.chain, "native")
    for lg in (la, lb):
        for i, a in enumerate(lg.accounts):
            backend.fund(lg.params, i, a, native, DEPOSIT)
    w = World(backend, alice, hub, bob, relayer, la, lb)
    w.start = {n: w.balance(n) for n in ("alice", "hub", "bob")}
    return w


@dataclass
class Virtual:
    """One virtual channel between Alice and Bob through the hub, and its machines."""

    world: World
    terms: VirtualTerms
    link: Link

    @property
    def latest(self) -> SignedState:
        return self.link.latest

    def pay(self, payer: int, amount: int) -> SignedState:
        asset = virtual_params(self.terms).assets[0]
        return self.link.run(payer, (Transfer(asset, amount),))

    def close(self) -> SignedState:
        return self.link.run(0, (Close(),))


def open_virtual(
    w: World, split: tuple[int, int] = CAPACITY, rate_b: tuple[int, int] = (1, 1)
) -> Virtual:
    """Alice and Bob agree on V's terms with the hub; the hub funds both guarantees (one
    off-chain update per ledger channel); V starts at the agreed split."""
    alice_key, bob_key = w.v_keys()
    terms = VirtualTerms(
        keys=(rules.address_of(alice_key), rules.address_of(bob_key)),
        node_ids=(node_id("alice"), node_id("bob")),
        hub_node_id=node_id("hub"),
        ledgers=(
            LedgerTerms(w.la.channel_id, hub_index=1),
            LedgerTerms(w.lb.channel_id, hub_index=0, num=rate_b[0], den=rate_b[1]),
        ),
        split=split,
        deadline=w.now() + LIFETIME,
        grace=GRACE,
        nonce=secrets.token_bytes(32),
    )
    w.la.propose(1, protocol.fund(terms, 0, w.la.state))
    w.lb.propose(0, protocol.fund(terms, 1, w.lb.state))
    w.la.propose(1, protocol.activate(w.la.state))
    w.lb.propose(0, protocol.activate(w.lb.state))
    params = virtual_params(terms)
    vid = virtual_channel_id(terms)
    initial = virtual_initial(terms)
    machines = (
        ChannelMachine(params, vid, 0, VirtualAuthority(alice_key), initial),
        ChannelMachine(params, vid, 1, VirtualAuthority(bob_key), initial),
    )
    return Virtual(w, terms, Link(machines, w.now))


def settle_cooperatively(v: Virtual, final: SignedState) -> None:
    """Alice settles V in L_A, the hub (holding V's final state now) in L_B."""
    v.world.la.propose(0, *protocol.settle(v.world.la.state, final))
    v.world.lb.propose(0, *protocol.settle(v.world.lb.state, final))


# --- the breakdown: on-chain actions the core's duties ask for ---------------------------------


class Actor:
    """One participant's on-chain hand in one ledger channel."""

    def __init__(self, lg: Ledger, me: int, relayer: Any) -> None:
        self.lg, self.me, self.relayer = lg, me, relayer

    def register(self) -> None:
        self.lg.backend.register(self.lg.params, self.lg.link.latest, self.relayer)

    def force(self, move: AppMove) -> None:
        lg = self.lg
        before = lg.onchain_state()
        after = protocol.next_state(lg.params, before, move, self.me, lg.backend.now())
        sigs = [b"", b""]
        authority = lg.backend.authority(lg.params, lg.accounts[self.me], self.me)
        sigs[self.me] = authority.sign(lg.params, after, None)
        lg.backend.force_move(
            lg.params, SignedState(after, (sigs[0], sigs[1])), self.me, self.relayer
        )

    def do(self, duty: Duty) -> None:
        if isinstance(duty, Register):
            self.register()
        elif isinstance(duty, ShowVState):
            self.force(
                protocol.show(self.lg.onchain_state(), protocol.vstate_from_held(duty.state))
            )
        elif isinstance(duty, Heartbeat):
            self.force(protocol.heartbeat(self.lg.onchain_state()))


def watch(
    w: Virtual,
    *,
    hub: bool = True,
    hub_knows: SignedState | None = None,
    ends: tuple[SignedState | None, SignedState | None] = (None, None),
    closed: tuple[bool, bool] = (False, False),
) -> list[tuple[str, Duty]]:
    """Run the honest parties' watchers until both ledgers concluded: at every moment
    something can happen (a period opens or is about to close, the deadline) each reads
    the chain and does what the core says; time jumps between those moments.
    ``ends[i]`` is the latest V state end ``i`` holds (``None``: that end is silent)."""
    world = w.world
    ledgers = (world.la, world.lb)
    hub_at = (1, 0)  # the hub's index in L_A, L_B
    best: Any = protocol.held_of(hub_knows) if hub_knows is not None else None
    done: list[tuple[str, Duty]] = []
    stop = w.terms.deadline + w.terms.grace + 4 * DURATION
    while (now := world.now()) < stop:
        disputes = [lg.backend.app_dispute(lg.params) for lg in ledgers]
        views = tuple(lg.view(d) for lg, d in zip(ledgers, disputes, strict=True))
        if all(v.phase == "concluded" for v in views):
            break
        acted = False
        for side, end_state in enumerate(ends):
            if end_state is None:
                continue
            mine = protocol.held_of(end_state)
            for duty in end_duties(
                w.terms, side, views[side], mine, closed[side], now, DURATION, MARGIN
            ):
                Actor(ledgers[side], 1 - hub_at[side], world.relayer_of(ledgers[side])).do(duty)
                done.append((("alice", "bob")[side], duty))
                acted = True
        if hub:
            if acted:
                disputes = [lg.backend.app_dispute(lg.params) for lg in ledgers]
                views = tuple(lg.view(d) for lg, d in zip(ledgers, disputes, strict=True))
            for view in views:
                if view.held is not None and (best is None or view.held.version > best.version):
                    best = view.held
            for duty in hub_duties(w.terms, views, best, now, (DURATION, DURATION), MARGIN):
                lg = ledgers[duty.side]
                Actor(lg, hub_at[duty.side], world.relayer_of(lg)).do(duty)
                done.append(("hub", duty))
                acted = True
        moments = [w.terms.deadline - DURATION - MARGIN, w.terms.deadline]
        moments.append(w.terms.deadline + w.terms.grace)
        for lg in ledgers:
            d = lg.backend.app_dispute(lg.params)
            if d is None or d.phase == "concluded":
                continue
            if now >= d.conclude_at:
                lg.backend.conclude(lg.params, world.relayer_of(lg))
            moments += [d.move_from, d.move_until - MARGIN, d.conclude_at]
        # after an action, look again at once: it may have opened someone else's window
        later = [m for m in moments if m > world.now()]
        wait = 1 if acted else min(later, default=stop) - world.now()
        world.advance_time(max(1, wait))
    return done


def close_ledger(world: World, lg: Ledger) -> None:
    """A ledger channel no longer funding anything closes cooperatively (on-chain)."""
    final = lg.link.run(0, (Close(),))
    lg.backend.close_cooperative(lg.params, final, world.relayer)
