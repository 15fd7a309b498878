"""Core channel states as the program's signed message, and the ed25519 StateAuthority.

A bundle is one raw ed25519 signature over ``program_client.encode_state_message``: the
exact bytes the program reads back from the Ed25519 precompile instruction. The message
starts with the program id and the channel id, so a signature cannot be replayed on
another channel or another deployment; the channel id itself commits to the participants,
the challenge duration, the nonce and the assets.
"""

from __future__ import annotations

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from chenilles_hub.core import Asset, ChannelParams, ChannelState, SignedState
from chenilles_hub.core.errors import AmountOutOfRange, InvalidParams, TooManyHtlcs

from . import program_client as pc

U64_MAX = 2**64 - 1
I64_MAX = 2**63 - 1
NATIVE = "native"

#: Seconds by which an HTLC's on-chain expiry (Clock sysvar unix time) precedes its
#: chain-neutral expiry. Solana's clock is a stake-weighted estimate that may run behind
#: or ahead of wall time by tens of seconds; two minutes keeps the on-chain deadline safely
#: before the one the route was computed with.
CLOCK_MARGIN = 120

#: Longest state message whose register transaction still fits Solana's 1232-byte packet
#: (4 assets leave room for 7 HTLCs, up to 3 assets for 8; see docs/solana.md).
MAX_MESSAGE_LEN = 737


def htlc_capacity(params: ChannelParams) -> int:
    """The most HTLCs a state of this channel may lock: the program's ``MAX_HTLCS``, fewer
    where they would not fit one register transaction beside the channel's assets (and, in
    an app channel, the longest app data a state may carry). A channel rule
    (``ChannelRules.max_htlcs``), so the node holds an offer past it in its queue instead
    of proposing a state this ledger could not take."""
    fixed = pc.MESSAGE_HEAD_LEN + pc.MESSAGE_ASSET_LEN * len(params.assets)
    if params.app:
        fixed += 2 + pc.MAX_APP_DATA
    return max(0, min(pc.MAX_HTLCS, (MAX_MESSAGE_LEN - fixed) // pc.MESSAGE_HTLC_LEN))


def mint_of(asset: Asset) -> bytes:
    """The 32-byte mint the program uses for ``asset`` (zeros for SOL)."""
    if asset.token == NATIVE:
        return pc.NATIVE_MINT
    try:
        return bytes(Pubkey.from_string(asset.token))
    except ValueError:
        raise InvalidParams(f"{asset}: not a base58 mint address") from None


def mints_of(params: ChannelParams) -> list[bytes]:
    if len(params.assets) > pc.MAX_ASSETS:
        raise InvalidParams(f"the Solana program holds at most {pc.MAX_ASSETS} assets")
    return [mint_of(a) for a in params.assets]


def participant_keys(params: ChannelParams) -> tuple[Pubkey, Pubkey]:
    try:
        a, b = (Pubkey.from_string(p.chain_key) for p in params.participants)
    except ValueError:
        raise InvalidParams("participant chain keys must be base58 ed25519 public keys") from None
    return a, b


def _u64(what: str, value: int) -> int:
    if not 0 <= value <= U64_MAX:
        raise AmountOutOfRange(f"{what} ({value}) does not fit a Solana u64")
    return value


def state_message(program_id: Pubkey, params: ChannelParams, state: ChannelState) -> bytes:
    """The bytes both participants sign for ``state``; refuses what the program cannot hold.
    An app channel's message ends with the app data (the app program is in the channel
    id)."""
    if state.app_data and not params.app:
        raise InvalidParams("a payment channel's state carries no app data")
    if len(state.app_data) > pc.MAX_APP_DATA:
        raise InvalidParams(f"the Solana program holds at most {pc.MAX_APP_DATA} bytes of app data")
    if len(state.htlcs) > pc.MAX_HTLCS:
        raise TooManyHtlcs(f"the Solana program holds at most {pc.MAX_HTLCS} HTLCs")
    mints = mints_of(params)
    balances = tuple(
        pc.AssetBalances(
            mint,
            _u64(f"balance of A in {asset}", state.free(asset)[0]),
            _u64(f"balance of B in {asset}", state.free(asset)[1]),
        )
        for asset, mint in zip(params.assets, mints, strict=True)
    )
    htlcs = []
    for h in state.htlcs:
        if h.native_expiry > I64_MAX:
            raise AmountOutOfRange(f"HTLC {h.id}: native expiry does not fit an i64")
        htlcs.append(
            pc.HtlcTerms(
                id=_u64(f"HTLC id {h.id}", h.id),
                payer=h.payer,
                amount=_u64(f"HTLC {h.id}", h.amount),
                payment_hash=h.payment_hash,
                expiry=h.native_expiry,
                asset=params.assets.index(h.asset),
            )
        )
    for asset in params.assets:
        _u64(f"total of {asset}", state.total(asset))
    msg = pc.ChannelStateMsg(
        program_id,
        state.channel_id,
        state.version,
        state.final,
        balances,
        tuple(htlcs),
        bytes(state.app_data) if params.app else None,
    )
    encoded = msg.encode()
    if len(encoded) > MAX_MESSAGE_LEN:
        raise TooManyHtlcs(
            f"{len(htlcs)} HTLCs over {len(balances)} assets do not fit one Solana transaction"
        )
    return encoded


class SolanaAuthority:
    """Signs with one participant's Solana key; verifies against the params' chain keys."""

    #: The program settles a dispute by version: a registered state loses to any newer one
    #: signed by both, so updates take two messages (``chenilles_hub.core.authority``).
    newer_version_wins = True

    def __init__(self, program_id: Pubkey, keypair: Keypair, margin: int = CLOCK_MARGIN) -> None:
        self._program_id = program_id
        self._key = keypair
        self._margin = margin

    def sign(
        self, params: ChannelParams, state: ChannelState, previous: SignedState | None = None
    ) -> bytes:
        return bytes(self._key.sign_message(state_message(self._program_id, params, state)))

    def verify(
        self,
        params: ChannelParams,
        state: ChannelState,
        signer: int,
        bundle: bytes,
        previous: SignedState | None = None,
    ) -> bool:
        if len(bundle) != 64:
            return False
        message = state_message(self._program_id, params, state)
        key = participant_keys(params)[signer]
        return Signature.from_bytes(bundle).verify(key, message)

    def revoke(self, params: ChannelParams, signed: SignedState) -> bytes | None:
        return None  # a newer version simply wins a dispute

    def verify_revocation(
        self, params: ChannelParams, signed: SignedState, signer: int, revocation: bytes | None
    ) -> bool:
        return revocation is None

    def native_expiry_ok(self, expiry: int, native_expiry: int) -> bool:
        return 0 <= native_expiry <= expiry - self._margin
