"""A ledger channel that funds a virtual channel: the hub's guarantee, mirrored by
VirtualLedger.sol.

A *virtual channel* V between Alice and Bob is funded by two ledger channels with a hub,
L_A = (Alice, hub) and L_B = (hub, Bob), by off-chain updates only. In each ledger channel
the app data holds a *guarantee*: V's capacity is locked there (the end party's share of
V's opening split from the end party, the far party's share from the hub), and the latest
V state anybody showed decides who gets it. V's states are signed by Alice's and Bob's V
keys (secp256k1, so the same signatures verify on every chain that can ``ecrecover``).

The hub is whole exactly when both ledger channels end on the same V state: it pays in
one what it receives in the other. Alice and Bob could sign many states and show each
ledger a different one; so V has a deadline ``T`` after which its ends may no longer show
states, and the hub alone may show states during a further ``grace``: whatever Alice or
Bob showed in one ledger, the hub shows in the other. The hub may also replace a state by
another of *equal* version (only a colluding Alice and Bob sign two of one version), and
keeps a ledger channel under dispute alive until ``T + grace`` with *heartbeat* moves.

App data, empty (no guarantee) or 430 bytes (integers big-endian)::

    vid 32 | hub u8 | end u8 | key0 20 | key1 20 | deadline u64 | grace u64 |
    capacity u256 | num u128 | den u128 | base0 u256 | base1 u256 |                 (core)
    version u64 | amount0 u256 | amount1 u256 | final u8 | sig0 65 | sig1 65 |   (V state)
    beat u64 | active u8

``hub`` is the hub's index in the ledger channel, ``end`` the V index (0 Alice, 1 Bob) of
the ledger's other participant, ``key0``/``key1`` V's participants' addresses. V amounts
are in V's unit; the ledger pays ``amount * num // den`` of its first asset to the end
party and the rest of ``capacity * num // den`` to the hub (the hub's quote, fixed at
open; the rounding is the hub's). ``base`` are the ledger's free balances besides the
guarantee. The first asset's balances are always ``base + payout(V state)``.

A guarantee is *pending* from FUND until ACTIVATE: the hub funds both ledger channels
first, then activates both. While pending nothing can be shown and the hub may cancel (a
SETTLE of a pending guarantee): so if the second ledger's end refuses to fund, the hub
gets its collateral back from the first, and no V state was enforceable meanwhile. An end
uses V only once its own ledger's guarantee is active.

A move's data is one byte (FUND, UPDATE, HEARTBEAT, SETTLE, ACTIVATE) followed by the next
app data (empty for SETTLE). Who may move what, the rule the contract enforces:

- FUND (no guarantee -> a pending one): by the hub, as a cooperative update only (the end
  signs it; the contract and the Solana program refuse every *forced* FUND, see
  ``VirtualLedgerApp.valid_forced``); V version 0 with the opening split and no
  signatures; the end party's V key is its address in this ledger channel (EVM) or the
  one it declared (Solana), so the hub cannot name a key of its own for the end party;
  balances unchanged.
- ACTIVATE (pending -> active, nothing else changes): by the hub.
- UPDATE (the V state changes, the core stays; active only): a V state signed by both V keys whose
  amounts add up to ``capacity``; by the end party before ``deadline`` with a higher
  version than the one held (and none after a final one), by the hub before
  ``deadline + grace`` with a version at least as high.
- HEARTBEAT: by the hub before ``deadline + grace``; only ``beat`` grows by one.
- SETTLE (guarantee -> none, balances unchanged): by anyone once the V state held is final;
  by the hub while the guarantee is pending (a cancel).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import msgspec
from eth_utils.address import to_checksum_address

from chenilles_hub.core import AssetBalances, ChannelParams, ChannelState
from chenilles_hub.core.errors import InvalidTransition

from . import compact
from .signing import STATE_TAG as STATE_TAG
from .signing import address_bytes as address_bytes
from .signing import address_of as address_of
from .signing import keccak as keccak
from .signing import recover as recover
from .signing import sign_digest as sign_digest
from .signing import state_digest as state_digest

APP_ID = "virtual"
CORE_LENGTH = 218
VSTATE_LENGTH = 203
DATA_LENGTH = CORE_LENGTH + VSTATE_LENGTH + 8 + 1
FUND, UPDATE, HEARTBEAT, SETTLE, ACTIVATE = 1, 2, 3, 4, 5
MOVES = {
    FUND: "fund",
    UPDATE: "update",
    HEARTBEAT: "heartbeat",
    SETTLE: "settle",
    ACTIVATE: "activate",
}
MAX_UINT256 = 2**256 - 1
NO_SIGNATURE = bytes(65)


def _u(data: bytes, start: int, size: int) -> int:
    return int.from_bytes(data[start : start + size], "big")


@dataclass(frozen=True)
class VState:
    """One state of the virtual channel as a ledger channel holds it."""

    version: int
    amounts: tuple[int, int]
    final: bool = False
    signatures: tuple[bytes, bytes] = (NO_SIGNATURE, NO_SIGNATURE)

    def encode(self) -> bytes:
        return (
            self.version.to_bytes(8, "big")
            + self.amounts[0].to_bytes(32, "big")
            + self.amounts[1].to_bytes(32, "big")
            + bytes([int(self.final)])
            + self.signatures[0]
            + self.signatures[1]
        )

    @classmethod
    def decode(cls, data: bytes) -> VState:
        if data[72] > 1:
            raise InvalidTransition("virtual: the final flag is 0 or 1")
        return cls(
            version=_u(data, 0, 8),
            amounts=(_u(data, 8, 32), _u(data, 40, 32)),
            final=bool(data[72]),
            signatures=(data[73:138], data[138:203]),
        )


@dataclass(frozen=True)
class Guarantee:
    """A ledger channel's part of one virtual channel (see the module docstring)."""

    vid: bytes
    hub: int
    end: int
    keys: tuple[str, str]
    deadline: int
    grace: int
    capacity: int
    num: int
    den: int
    base: tuple[int, int]
    vstate: VState
    beat: int = 0
    active: bool = False
    #: the 256-byte layout of a Solana ledger (``compact``), where ``base`` is derived
    compact: bool = False

    @property
    def end_index(self) -> int:
        """The end party's index in the ledger channel."""
        return 1 - self.hub

    def core(self) -> bytes:
        return (
            self.vid
            + bytes([self.hub, self.end])
            + bytes.fromhex(self.keys[0][2:])
            + bytes.fromhex(self.keys[1][2:])
            + self.deadline.to_bytes(8, "big")
            + self.grace.to_bytes(8, "big")
            + self.capacity.to_bytes(32, "big")
            + self.num.to_bytes(16, "big")
            + self.den.to_bytes(16, "big")
            + self.base[0].to_bytes(32, "big")
            + self.base[1].to_bytes(32, "big")
        )

    def encode(self) -> bytes:
        if self.compact:
            v = self.vstate
            return compact.encode(
                compact.Fields(
                    self.vid,
                    self.hub,
                    self.end,
                    self.keys,
                    self.deadline,
                    self.grace,
                    self.capacity,
                    self.num,
                    self.den,
                    v.version,
                    v.amounts,
                    v.final,
                    v.signatures,
                    self.beat,
                    self.active,
                )
            )
        return (
            self.core()
            + self.vstate.encode()
            + self.beat.to_bytes(8, "big")
            + bytes([int(self.active)])
        )

    @classmethod
    def decode(cls, data: bytes) -> Guarantee:
        if len(data) != DATA_LENGTH:
            raise InvalidTransition(f"virtual: a guarantee is {DATA_LENGTH} bytes")
        if data[32] > 1 or data[33] > 1 or data[DATA_LENGTH - 1] > 1:
            raise InvalidTransition("virtual: hub and end are indices 0 or 1, active 0 or 1")
        return cls(
            vid=data[0:32],
            hub=data[32],
            end=data[33],
            keys=(to_checksum_address(data[34:54]), to_checksum_address(data[54:74])),
            deadline=_u(data, 74, 8),
            grace=_u(data, 82, 8),
            capacity=_u(data, 90, 32),
            num=_u(data, 122, 16),
            den=_u(data, 138, 16),
            base=(_u(data, 154, 32), _u(data, 186, 32)),
            vstate=VState.decode(data[CORE_LENGTH : CORE_LENGTH + VSTATE_LENGTH]),
            beat=_u(data, CORE_LENGTH + VSTATE_LENGTH, 8),
            active=bool(data[DATA_LENGTH - 1]),
        )

    def total(self) -> int:
        """What the guarantee locks in the ledger's first asset."""
        return self.capacity * self.num // self.den

    def payout(self, vstate: VState | None = None) -> tuple[int, int]:
        """What the ledger pays each of its participants from the guarantee."""
        v = vstate or self.vstate
        end_pay = v.amounts[self.end] * self.num // self.den
        pay = [0, 0]
        pay[self.end_index] = end_pay
        pay[self.hub] = self.total() - end_pay
        return (pay[0], pay[1])

    def balances(self) -> tuple[int, int]:
        pay = self.payout()
        return (self.base[0] + pay[0], self.base[1] + pay[1])

    def signed_by_both(self) -> bool:
        v = self.vstate
        digest = state_digest(self.vid, v.version, v.amounts, v.final)
        return all(
            (signer := recover(digest, sig)) is not None and signer == address_bytes(key)
            for sig, key in zip(v.signatures, self.keys, strict=True)
        )


def decode(data: bytes, balances: tuple[int, int] | None = None) -> Guarantee | None:
    """The guarantee in app data ``data`` (``None`` if empty). The compact layout derives
    ``base`` from the state's first-asset ``balances``, so it needs them."""
    if not data:
        return None
    if len(data) == compact.LENGTH:
        if balances is None:
            raise InvalidTransition("virtual: a compact guarantee is read with its balances")
        g = parse_compact(data)
        pay = g.payout()
        base = (balances[0] - pay[0], balances[1] - pay[1])
        if min(base) < 0:
            raise InvalidTransition("virtual: the ledger's balances do not cover the guarantee")
        return replace(g, base=base)
    return Guarantee.decode(data)


def parse_compact(data: bytes, base: tuple[int, int] = (0, 0)) -> Guarantee:
    """The compact guarantee in ``data`` with a given ``base`` (not derived)."""
    f = compact.parse(data)
    return Guarantee(
        vid=f.vid,
        hub=f.hub,
        end=f.end,
        keys=f.keys,
        deadline=f.deadline,
        grace=f.grace,
        capacity=f.capacity,
        num=f.num,
        den=f.den,
        base=base,
        vstate=VState(f.version, f.amounts, f.final, f.signatures),
        beat=f.beat,
        active=f.active,
        compact=True,
    )


def is_compact_chain(chain: str) -> bool:
    """Whether a ledger channel on ``chain`` holds the compact layout (Solana's app data
    is limited to 256 bytes)."""
    return chain.startswith("solana:")


def state_guarantee(state: ChannelState) -> Guarantee | None:
    """The guarantee a ledger state holds, in either layout."""
    bal = state.balances[0].amounts if state.balances else None
    return decode(state.app_data, (bal[0], bal[1]) if bal else None)


def move(kind: int, next_data: bytes) -> bytes:
    """``AppMove.data`` for a move to ``next_data`` (empty for SETTLE)."""
    return bytes([kind]) + next_data


def is_fund(before: ChannelState, after: ChannelState) -> bool:
    """Whether ``after`` follows ``before`` by a FUND: a guarantee where there was none."""
    return not before.app_data and bool(after.app_data)


class VirtualLedgerApp:
    """The off-chain rule. ``valid_transition`` is what a member's machine checks before it
    signs a move, cooperative or forced; ``valid_forced`` is the chain's rule (the contract
    and the Solana program, line for line): the same, except that a FUND is never forced.

    Why a FUND is cooperative only: the guarantee's core names V's id, not the ledger state
    it was funded in. Were a forced FUND allowed, a hub could, after V closed, register the
    end's ledger, FUND it again with V's old terms and show V's old final state, which both
    ends signed: the ledger would pay V's outcome a second time. So a guarantee enters a
    ledger only in a state its end signed, and the end's node signs only the FUND of an
    offer it accepted and whose V id it never saw before (``node/hub/virtual.py``).

    ``v_keys`` maps a ledger participant's chain key to the V key (secp256k1 address) its
    owner declared as its own, for chains where the two differ (Solana: ed25519 ledger
    keys). A FUND there is valid only if the end's V key is the one declared for the end
    (the program is not told the participants and cannot verify ed25519): this check keeps
    an end's own machine from signing a FUND that names a key of the hub's choosing.
    Without a declaration, a FUND on such a chain is refused.
    """

    app_id = APP_ID

    def __init__(self, v_keys: Mapping[str, str] | None = None) -> None:
        self.v_keys = {k: a.lower() for k, a in (v_keys or {}).items()}

    def apply(
        self, params: ChannelParams, state: ChannelState, mover: int, data: bytes
    ) -> ChannelState:
        if not data or data[0] not in MOVES:
            raise InvalidTransition("virtual: unknown move")
        nxt = data[1:]
        if data[0] == SETTLE and nxt:
            raise InvalidTransition("virtual: a settle leaves no guarantee")
        length = compact.LENGTH if is_compact_chain(params.chain) else DATA_LENGTH
        if data[0] != SETTLE and len(nxt) != length:
            raise InvalidTransition(f"virtual: a guarantee is {length} bytes on {params.chain}")
        if len(nxt) == compact.LENGTH and state.balances:
            # base is not in the compact layout: a FUND keeps the balances, any other move
            # keeps the base the held guarantee leaves
            g0 = state_guarantee(state)
            if g0 is None:
                return replace_state(state, nxt)
            g1 = parse_compact(nxt, g0.base)
            first = AssetBalances(state.balances[0].asset, g1.balances())
            return msgspec.structs.replace(
                state, app_data=nxt, balances=(first, *state.balances[1:])
            )
        after = replace_state(state, nxt)
        return msgspec.structs.replace(after, balances=self.outcome(params, after))

    def outcome(self, params: ChannelParams, state: ChannelState) -> tuple[AssetBalances, ...]:
        if len(state.app_data) == compact.LENGTH:
            # a compact guarantee's base is derived from the balances: they are its outcome
            return state.balances
        g = decode_or_none(state.app_data)
        if g is None or not state.balances:
            return state.balances
        first = AssetBalances(state.balances[0].asset, g.balances())
        return (first, *state.balances[1:])

    def valid_transition(
        self,
        params: ChannelParams,
        before: ChannelState,
        after: ChannelState,
        mover: int,
        now: int,
    ) -> bool:
        try:
            return self._valid(params, before, after, mover, now)
        except (InvalidTransition, ValueError):
            return False

    def valid_forced(
        self,
        params: ChannelParams,
        before: ChannelState,
        after: ChannelState,
        mover: int,
        now: int,
    ) -> bool:
        """The chain's verdict on a forced move (the contract's and the program's rule)."""
        if is_fund(before, after):
            return False
        return self.valid_transition(params, before, after, mover, now)

    def _valid(
        self,
        params: ChannelParams,
        before: ChannelState,
        after: ChannelState,
        mover: int,
        now: int,
    ) -> bool:
        if len(before.balances) != len(after.balances) or before.balances[1:] != after.balances[1:]:
            return False
        if not before.balances:
            return False
        compact_chain = is_compact_chain(params.chain)
        length = compact.LENGTH if compact_chain else DATA_LENGTH
        if any(d and len(d) != length for d in (before.app_data, after.app_data)):
            return False
        g0, g1 = state_guarantee(before), state_guarantee(after)
        if g1 is None:  # SETTLE: of a final V state, or the hub's cancel of a pending one
            if g0 is None or before.balances != after.balances:
                return False
            return (g0.active and g0.vstate.final) or (not g0.active and mover == g0.hub)
        if g1.den == 0 or not fits(g1) or after.balances[0].amounts != g1.balances():
            return False
        if g0 is None:  # FUND (cooperative only: the chain refuses it forced)
            v = g1.vstate
            # the end's V key is its ledger key (EVM), or the one it declared (Solana)
            end_key = params.participants[g1.end_index].chain_key
            declared = self.v_keys.get(end_key) if compact_chain else end_key.lower()
            bound = g1.keys[g1.end].lower() == declared
            return (
                mover == g1.hub
                and bound
                and (v.version, v.final, g1.beat, g1.active) == (0, False, 0, False)
                and v.amounts[0] + v.amounts[1] == g1.capacity
                and before.balances[0].amounts == after.balances[0].amounts
            )
        if g0.core() != g1.core():
            return False
        if g0.active != g1.active:  # ACTIVATE
            return mover == g0.hub and g1.active and (g0.vstate, g0.beat) == (g1.vstate, g1.beat)
        if g0.vstate == g1.vstate:  # HEARTBEAT
            return mover == g0.hub and g1.beat == g0.beat + 1 and now < g0.deadline + g0.grace
        old, new = g0.vstate, g1.vstate
        if not g0.active or g1.beat != g0.beat or new.amounts[0] + new.amounts[1] != g0.capacity:
            return False
        if mover == g0.hub:
            in_time = now < g0.deadline + g0.grace and new.version >= old.version
        else:
            in_time = now < g0.deadline and new.version > old.version and not old.final
        return in_time and g1.signed_by_both()

    def turn(self, params: ChannelParams, state: ChannelState) -> tuple[int, ...]:
        return (0, 1) if state.app_data else ()

    def check_initial(self, params: ChannelParams, state: ChannelState) -> None:
        if state.app_data:
            raise InvalidTransition("virtual: a ledger channel opens without a guarantee")

    def describe(self, params: ChannelParams, state: ChannelState) -> dict[str, Any]:
        g = decode_or_none(state.app_data)
        if g is None:
            return {"guarantee": None}
        return {
            "guarantee": {
                "virtual_channel": g.vid.hex(),
                "hub": g.hub,
                "end": g.end,
                "keys": list(g.keys),
                "deadline": g.deadline,
                "grace": g.grace,
                "capacity": str(g.capacity),
                "rate": [str(g.num), str(g.den)],
                "version": g.vstate.version,
                "amounts": [str(a) for a in g.vstate.amounts],
                "final": g.vstate.final,
                "payout": [str(p) for p in g.payout()],
            }
        }


def fits(g: Guarantee) -> bool:
    """Whether the contract computes ``g``'s balances without overflowing (it refuses the
    move where Solidity's checked arithmetic reverts)."""
    if g.compact:  # u64 balances; compact.decode checked the rest
        return all(b <= compact.MAX_U64 for b in g.balances())
    v = g.vstate.amounts[g.end]
    if g.capacity * g.num > MAX_UINT256 or v * g.num > MAX_UINT256 or v > g.capacity:
        return False
    return all(b <= MAX_UINT256 for b in g.balances())


def replace_state(state: ChannelState, app_data: bytes) -> ChannelState:
    return msgspec.structs.replace(state, app_data=app_data)


def decode_or_none(data: bytes) -> Guarantee | None:
    try:
        return decode(data)
    except InvalidTransition:
        return None


def with_vstate(g: Guarantee, vstate: VState) -> Guarantee:
    return replace(g, vstate=vstate)


def activate(g: Guarantee) -> Guarantee:
    return replace(g, active=True)


def heartbeat(g: Guarantee) -> Guarantee:
    return replace(g, beat=g.beat + 1)
