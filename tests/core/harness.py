"""Two channel machines wired through an in-memory exchange that can lose, duplicate and
reorder messages, with a "disk" that records every Persist and checks the safety rule that a
state is persisted before any signature on it leaves the process."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

import nacl.exceptions
import nacl.signing

from chenilles_hub.core import (
    Accept,
    Asset,
    ChannelError,
    ChannelMachine,
    ChannelMessage,
    ChannelParams,
    ChannelRules,
    ChannelState,
    Effect,
    HtlcPolicy,
    Participant,
    Persist,
    Propose,
    Send,
    SignedState,
    Update,
    decode_message,
    encode_message,
    initial_state,
)
from chenilles_hub.signing import Ed25519Authority, state_digest

CHAIN = "test:ledger"
ETH = Asset(CHAIN, "native")
TOKEN = Asset(CHAIN, "token-1")
NOW = 1_700_000_000


class RevokingAuthority(Ed25519Authority):
    """Ed25519 signatures plus revocations (a signature over "revoke" + the state digest),
    standing in for backends like Bitcoin that revoke old states."""

    def revoke(self, params: ChannelParams, signed: SignedState) -> bytes | None:
        return self._key.sign(b"revoke" + state_digest(params, signed.state)).signature

    def verify_revocation(
        self, params: ChannelParams, signed: SignedState, signer: int, revocation: bytes | None
    ) -> bool:
        state = signed.state
        if revocation is None:
            return False
        try:
            key = nacl.signing.VerifyKey(bytes.fromhex(params.participants[signer].chain_key))
            key.verify(b"revoke" + state_digest(params, state), revocation)
        except (ValueError, nacl.exceptions.BadSignatureError):
            return False
        return True


class VersionWinsAuthority(Ed25519Authority):
    """Ed25519 signatures on a ledger where a newer version wins a dispute (EVM, Solana):
    updates after the opening take two messages, propose and accept."""

    newer_version_wins = True


#: The authorities the property tests draw from: the three ways an update can run.
AUTHORITIES = ("plain", "revoking", "versioned")


def make_keys(seed: int) -> tuple[nacl.signing.SigningKey, nacl.signing.SigningKey]:
    def key(tag: bytes) -> nacl.signing.SigningKey:
        return nacl.signing.SigningKey(hashlib.sha256(tag + seed.to_bytes(8, "big")).digest())

    return key(b"alice"), key(b"bob")


def make_params(keys: tuple[nacl.signing.SigningKey, ...], app: str = "") -> ChannelParams:
    return ChannelParams(
        chain=CHAIN,
        participants=tuple(
            Participant(k.verify_key.encode().hex(), hashlib.sha256(bytes(k)).digest())
            for k in keys
        ),
        assets=(ETH, TOKEN),
        challenge_duration=3600,
        nonce=b"\x01" * 32,
        app=app,
    )


CHANNEL_ID = hashlib.sha256(b"test channel").digest()


@dataclass
class Side:
    machine: ChannelMachine
    disk: list[bytes] = field(default_factory=list)  # encoded snapshots, in order
    errors: list[ChannelError] = field(default_factory=list)
    events: list[Effect] = field(default_factory=list)
    #: Every state this side ever put its signature on (in a Propose or an Accept it sent).
    signed: list[ChannelState] = field(default_factory=list)
    #: The peer's proposals this side counter-signed (an Accept it sent): state and updates.
    countersigned: list[tuple[ChannelState, tuple[Update, ...]]] = field(default_factory=list)


@dataclass
class Pair:
    """Alice (participant 0) and Bob (participant 1) and the wire between them."""

    alice: Side
    bob: Side
    wire: list[tuple[int, bytes]] = field(default_factory=list)  # (recipient index, bytes)

    @classmethod
    def create(
        cls,
        seed: int = 0,
        deposits: tuple[int, int] = (1000, 1000),
        revoking: bool = False,
        versioned: bool = False,
        policy: HtlcPolicy | None = None,
        apps: dict | None = None,
        app: str = "",
        rules: tuple[ChannelRules, ChannelRules] | None = None,
    ) -> Pair:
        keys = make_keys(seed)
        params = make_params(keys, app=app)
        initial = initial_state(CHANNEL_ID, params.assets, {ETH: deposits, TOKEN: (50, 0)})
        authority = (
            RevokingAuthority
            if revoking
            else VersionWinsAuthority
            if versioned
            else Ed25519Authority
        )
        sides = [
            Side(
                ChannelMachine(
                    params,
                    CHANNEL_ID,
                    i,
                    authority(keys[i]),
                    initial,
                    policy=policy,
                    apps=apps,
                    rules=rules[i] if rules else ChannelRules(),
                )
            )
            for i in (0, 1)
        ]
        return cls(sides[0], sides[1])

    def side(self, index: int) -> Side:
        return self.alice if index == 0 else self.bob

    def run_effects(self, index: int, effects: list[Effect]) -> None:
        """Carry effects out as a node would, checking the persist-before-send rule."""
        side = self.side(index)
        persisted_versions: set[int] = set()
        for effect in effects:
            if isinstance(effect, Persist):
                from chenilles_hub.core import encode_snapshot

                side.disk.append(encode_snapshot(effect.snapshot))
                snap = effect.snapshot
                if snap.latest is not None:
                    persisted_versions.add(snap.latest.state.version)
                if snap.pending is not None:
                    persisted_versions.add(snap.pending.signed.state.version)
            elif isinstance(effect, Send):
                msg = effect.message
                signed_version = _signed_version(msg)
                if signed_version is not None:
                    assert signed_version in persisted_versions or _already_on_disk(
                        side, signed_version
                    ), f"signature on version {signed_version} sent before it was persisted"
                    side.signed.append(_signed_state(side, msg))
                    if isinstance(msg, Accept):
                        snap = side.machine.snapshot()
                        assert snap.latest is not None
                        side.countersigned.append((snap.latest.state, snap.latest_updates))
                self.wire.append((1 - index, encode_message(msg)))
            else:
                side.events.append(effect)

    def act(self, index: int, effects_fn) -> None:  # type: ignore[no-untyped-def]
        self.run_effects(index, effects_fn(self.side(index).machine))

    def deliver_one(self, position: int = 0, now: int = NOW) -> None:
        recipient, data = self.wire.pop(position)
        side = self.side(recipient)
        message = decode_message(data)
        try:
            effects = side.machine.receive(message, now)
        except ChannelError as error:
            side.errors.append(error)
            effects = side.machine.rejection(message, error)
        self.run_effects(recipient, effects)

    def deliver_all(self, now: int = NOW, limit: int = 1000) -> None:
        for _ in range(limit):
            if not self.wire:
                return
            self.deliver_one(0, now)
        raise AssertionError("message storm: the exchange does not quiesce")

    def deliver_chaotically(self, rng: random.Random, now: int = NOW, limit: int = 1000) -> None:
        """Lose, duplicate and reorder messages until none are left in flight."""
        for _ in range(limit):
            if not self.wire:
                return
            roll = rng.random()
            position = rng.randrange(len(self.wire))
            if roll < 0.2:
                self.wire.pop(position)  # lost
            elif roll < 0.35:
                self.wire.append(self.wire[position])  # duplicated
                self.deliver_one(position, now)
            else:
                self.deliver_one(position, now)  # delivered, maybe out of order
        raise AssertionError("message storm: the exchange does not quiesce")

    def crash(self, index: int) -> None:
        """Kill one side (``kill -9``) and start it again from its last ``Persist``: what was
        on the wire towards it is lost with the connection; what it sent may still arrive."""
        from chenilles_hub.core import decode_snapshot

        side = self.side(index)
        if side.disk:
            side.machine.restore(decode_snapshot(side.disk[-1]))
        self.wire = [(to, data) for to, data in self.wire if to != index]

    def reestablish(self, now: int = NOW) -> None:
        """Both sides reconnect over a reliable link and exchange what the other missed."""
        for _ in range(5):
            self.act(0, lambda m: m.reestablish())
            self.act(1, lambda m: m.reestablish())
            self.deliver_all(now)
            if self.settled():
                return

    def settled(self) -> bool:
        a, b = self.alice.machine, self.bob.machine
        return (
            a.latest == b.latest
            and a.pending is None
            and b.pending is None
            and a.awaiting_ack is None
            and b.awaiting_ack is None
        )


def _signed_version(message: ChannelMessage) -> int | None:
    if isinstance(message, Propose):
        return message.state.version
    if isinstance(message, Accept):
        return message.version
    return None


def _signed_state(side: Side, message: ChannelMessage) -> ChannelState:
    if isinstance(message, Propose):
        return message.state
    latest = side.machine.latest
    assert latest is not None and latest.state.version == _signed_version(message)
    return latest.state


def _already_on_disk(side: Side, version: int) -> bool:
    from chenilles_hub.core import decode_snapshot

    for raw in side.disk:
        snap = decode_snapshot(raw)
        if snap.latest is not None and snap.latest.state.version >= version:
            return True
        if snap.pending is not None and snap.pending.signed.state.version == version:
            return True
    return False


def opened(**kwargs) -> Pair:  # type: ignore[no-untyped-def]
    pair = Pair.create(**kwargs)
    pair.act(0, lambda m: m.open())
    pair.deliver_all()
    assert pair.settled(), "opening did not complete"
    return pair
