"""V keys: which secp256k1 key signs a virtual channel's states for each end, and how a
ledger member's peer learns it (docs/virtual-channels.md, "Across chains").

V's states are signed with secp256k1 over a keccak digest, so one signed state can be
shown to an EVM ledger and to a Solana ledger alike. On EVM an end's V key is its ledger
key: the guarantee's FUND checks "the end's V key is its address in this ledger". On
Solana the ledger key is ed25519 and the program cannot bind the two, so each member of a
Solana ``virtual`` ledger channel *declares* its V key to the other (``VirtualKey``), and
both run the ledger's rule as ``VirtualLedgerApp(v_keys)``: a FUND there is valid only
with the end's declared key, so the end's own machine never signs one naming a key of
the hub's choosing, and the hub's machine accepts the FUND it proposes.

The V key of a Solana account is derived from the account's secret with a domain tag:
nothing new to keep, and a restarted node signs with the same key. A declaration is kept
by its receiver as a setting (``virtual_key/<ledger>``, written in the event's
checkpoint), and one declared key cannot be replaced by another (a peer cannot move V's
key under a guarantee that names it).
"""

from __future__ import annotations

from typing import Any

from chenilles_app_virtual import rules

from ...core.errors import InvalidParams, NotPermitted
from ..net import wire
from .context import NodeContext
from .records import Channel

#: Settings key prefix of a peer's declared V key, per ledger channel.
KEY_PREFIX = "virtual_key/"
_DERIVE_TAG = b"chenilles/virtual-channel-key/v1"
_SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def is_declared_chain(chain: str) -> bool:
    """Chains whose ledger keys are not V keys (the compact layout's chains: Solana)."""
    return rules.is_compact_chain(chain)


def v_private_key(account: Any) -> bytes:
    """This node's V key for ledger channels held by ``account``: its secp256k1 key (EVM),
    or one derived from its ed25519 secret (Solana)."""
    key = getattr(account, "key", None)
    if isinstance(key, bytes) and len(key) == 32:
        return key
    keypair = getattr(account, "keypair", None)
    secret = getattr(keypair, "secret", None)
    if callable(secret):
        derived = rules.keccak(_DERIVE_TAG + bytes(secret()))
        if not 0 < int.from_bytes(derived, "big") < _SECP256K1_ORDER:
            raise InvalidParams("this account's derived V key is out of range")  # ~2^-128
        return derived
    raise InvalidParams("this ledger's account holds no key a virtual channel can sign with")


class VirtualKeys:
    """Every node's V keys and its peers' declared ones; owns the node's ``virtual`` rule
    (a ``VirtualLedgerApp`` of this node's own, whose ``v_keys`` it fills)."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.app = rules.VirtualLedgerApp()
        if rules.APP_ID in ctx.apps:
            ctx.apps[rules.APP_ID] = self.app
        #: ledger channel id -> the peer's declared V address
        self.declared: dict[bytes, str] = {}
        #: ledger channels whose peer has our declaration (this process's life)
        self.sent: set[bytes] = set()
        #: The channels that are Solana ``virtual`` ledgers (their params say so, and a
        #: channel id stands for its params), as of the channel table's size and newest id:
        #: ``declare`` runs after every event and need not look at every channel each time.
        self._ledgers: list[bytes] = []
        self._scanned: tuple[int, bytes | None] = (0, None)

    def own_address(self, ledger: Channel) -> str:
        return rules.address_of(v_private_key(ledger.account))

    def end_address(self, ledger: Channel, index: int) -> str:
        """The V address of ledger member ``index``: its ledger key (EVM), or our own
        derived key / the peer's declaration (Solana)."""
        if not is_declared_chain(ledger.params.chain):
            return ledger.params.participants[index].chain_key
        if index == ledger.me:
            return self.own_address(ledger)
        declared = self.declared.get(ledger.channel_id)
        if declared is None:
            raise InvalidParams(
                f"the peer has not declared its V key for ledger {ledger.channel_id.hex()[:16]}"
            )
        return declared

    def declare(self, peer: bytes | None = None) -> None:
        """Send our V key to the peer of each active Solana ``virtual`` ledger channel that
        has not had it from this process (all of ``peer``'s again after a reconnect)."""
        channels = self.ctx.channels
        for channel_id in self._virtual_ledgers():
            ledger = channels.get(channel_id)
            if ledger is None or not self._declarable(ledger):
                continue
            if peer is not None and ledger.peer == peer:
                self.sent.discard(ledger.channel_id)
            if ledger.channel_id in self.sent or ledger.peer in self.ctx.offline:
                continue
            own = self.own_address(ledger)
            self.app.v_keys[ledger.params.participants[ledger.me].chain_key] = own.lower()
            self.ctx.send(ledger.peer, wire.VirtualKey(ledger.channel_id, own))
            self.sent.add(ledger.channel_id)

    def on_key(self, peer: bytes, m: wire.VirtualKey) -> None:
        """The peer's declaration for a ledger channel we share with it."""
        ledger = self.ctx.channels.get(m.ledger)
        # any status: the peer declares once its side sees the ledger active, which may be
        # before ours does
        if ledger is None or ledger.peer != peer or not self._declarable(ledger, active=False):
            raise InvalidParams("a V key for no Solana virtual ledger channel with this peer")
        known = self.declared.get(m.ledger)
        if known is not None:
            if known.lower() != m.v_key.lower():
                raise NotPermitted("a V key is declared once per ledger channel")
            return
        chain_key = ledger.params.participants[1 - ledger.me].chain_key
        held = self.app.v_keys.get(chain_key)
        if held is not None and held != m.v_key.lower():
            raise NotPermitted("this ledger key has declared another V key")
        self._learn(m.ledger, chain_key, m.v_key)
        self.ctx.pending.records[KEY_PREFIX + m.ledger.hex()] = m.v_key.encode()

    def restore(self) -> None:
        store = self.ctx.store
        if store is None:
            return
        for key, value in store.settings_with_prefix(KEY_PREFIX):
            ledger = self.ctx.channels.get(bytes.fromhex(key[len(KEY_PREFIX) :]))
            if ledger is not None:
                chain_key = ledger.params.participants[1 - ledger.me].chain_key
                self._learn(ledger.channel_id, chain_key, value.decode())
        for ledger in self.ctx.channels.values():
            if self._declarable(ledger, active=False):
                own = self.own_address(ledger).lower()
                self.app.v_keys[ledger.params.participants[ledger.me].chain_key] = own

    def _virtual_ledgers(self) -> list[bytes]:
        """The ids of the channels that are Solana ``virtual`` ledgers, in table order. The
        table only grows at its end, and a failed event takes back the channels it added
        (``Savepoint``): its size and newest id tell whether to look again."""
        channels = self.ctx.channels
        now = (len(channels), next(reversed(channels), None))
        if now != self._scanned:
            self._ledgers = [
                channel_id
                for channel_id, ledger in channels.items()
                if self._declarable(ledger, active=False)
            ]
            self._scanned = now
        return self._ledgers

    def _learn(self, ledger: bytes, chain_key: str, v_key: str) -> None:
        self.declared[ledger] = v_key
        self.app.v_keys[chain_key] = v_key.lower()

    def _declarable(self, ledger: Channel, active: bool = True) -> bool:
        return (
            ledger.params.app == rules.APP_ID
            and is_declared_chain(ledger.params.chain)
            and (ledger.status == "active" or not active)
        )
