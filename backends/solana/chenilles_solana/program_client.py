"""Client side of the Chenilles Solana channel program (contracts/solana/chenilles_channel.c).

Instruction builders, account layouts, the signed state message, PDA derivations and the
program's log events, on solders types. Nothing here imitates the program: it only encodes
what the program reads and decodes what it writes. Keep the constants in sync with the C
source.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from .spl_token import TOKEN_PROGRAM_ID

SYSTEM_PROGRAM_ID = Pubkey.from_string("11111111111111111111111111111111")
ED25519_PROGRAM_ID = Pubkey.from_string("Ed25519SigVerify111111111111111111111111111")
INSTRUCTIONS_SYSVAR_ID = Pubkey.from_string("Sysvar1nstructions1111111111111111111111111")
NATIVE_MINT = bytes(32)  # "mint" of the native asset (lamports) in state messages

REPO_ROOT = Path(__file__).resolve().parents[3]
PROGRAM_SO = REPO_ROOT / "contracts" / "solana" / "build" / "chenilles_channel.so"

MSG_MAGIC = b"CHENILLES-SOL-v1"
CHANNEL_ID_DOMAIN = b"CHENILLES-SOL-CHANNEL"
SEED_CHANNEL = b"channel"
SEED_VAULT = b"vault"
SEED_PREIMAGE = b"preimage"
MAX_HTLCS = 8
MAX_ASSETS = 4  # SOL and/or up to 4 SPL mints per channel
MAX_APP_DATA = 256  # app data a state of an app channel may carry
#: Bytes of a state message besides its assets, HTLCs and app data: magic, program id,
#: channel id, version, final flag, asset count, HTLC count (``encode_state_message``).
MESSAGE_HEAD_LEN = len(MSG_MAGIC) + 32 + 32 + 8 + 1 + 1 + 1
#: Bytes per asset (mint, two u64 amounts) and per HTLC (id, payer, asset, amount, hash,
#: expiry) in a state message; an app channel's message ends with a u16 length and its data.
MESSAGE_ASSET_LEN = 32 + 8 + 8
MESSAGE_HTLC_LEN = 8 + 1 + 1 + 8 + 32 + 8

# Instruction tags
IX_OPEN, IX_DEPOSIT, IX_COOP_CLOSE, IX_REGISTER, IX_CONCLUDE, IX_WITHDRAW, IX_REVEAL = range(7)
IX_PROGRESS = 7
IX_CLOSE_ACCOUNTS = 8

# Channel status (ST_FORCED: the registered state came from a forced move)
ST_OPEN, ST_DISPUTE, ST_CONCLUDED, ST_CLOSED, ST_FORCED = range(5)

# Custom program error codes (InstructionError::Custom(code))
ERRORS = {
    1: "BAD_INSTRUCTION",
    2: "NOT_ENOUGH_ACCOUNTS",
    3: "WRONG_CHANNEL_ACCOUNT",
    4: "BAD_PDA",
    5: "NOT_SIGNER",
    6: "NOT_WRITABLE",
    7: "BAD_SYSVAR",
    8: "MISSING_SIGNATURE",
    9: "BAD_SIGNATURE_IX",
    10: "BAD_SIGNER",
    11: "BAD_MESSAGE",
    12: "WRONG_PROGRAM",
    13: "WRONG_CHANNEL",
    14: "BAD_ASSET",
    15: "NOT_CONSERVING",
    16: "STALE_VERSION",
    17: "NOT_FINAL",
    18: "BAD_STATUS",
    19: "CHALLENGE_PERIOD_OVER",
    20: "CHALLENGE_PERIOD_ACTIVE",
    21: "NOT_CONCLUDED",
    22: "ALREADY_WITHDRAWN",
    23: "WRONG_PARTICIPANT_ACCOUNT",
    24: "HTLC_UNRESOLVED",
    25: "ALREADY_REVEALED",
    26: "OVERFLOW",
    27: "HTLCS_IN_FINAL",
    28: "TOO_MANY_HTLCS",
    29: "BAD_PARTICIPANTS",
    30: "WRONG_SYSTEM_PROGRAM",
    31: "WRONG_TOKEN_PROGRAM",
    32: "BAD_VAULT",
    33: "BAD_TOKEN_ACCOUNT",
    34: "BAD_MINT",
    35: "ALREADY_FUNDED",
    36: "NOT_PARTICIPANT",
    37: "NO_APP",
    38: "WRONG_APP",
    39: "STATE_IS_FINAL",
    40: "NOT_WITHDRAWN",
    41: "WRONG_RENT_PAYER",
}
ERROR_CODES = {name: code for code, name in ERRORS.items()}

CHANNEL_ACCOUNT_SIZE = 1040
CHANNEL_MAGIC = b"CHNLSOL3"
APP_TAIL_SIZE = 296  # after the channel record of an app channel: app program, app data
PREIMAGE_RECORD_SIZE = 88

#: Where our own ledgers (the embedded LiteSVM, the devnet server) deploy the program:
#: sha256("chenilles/solana/program") taken as an address. No keypair exists for it (none
#: is needed: these ledgers load the program directly), and a fixed id keeps channel ids
#: and PDAs reproducible across runs. On a real cluster the id is wherever it was deployed.
DEFAULT_PROGRAM_ID = Pubkey.from_bytes(hashlib.sha256(b"chenilles/solana/program").digest())


def load_program() -> bytes:
    """The built program (scripts/build_solana_program.py writes it)."""
    if not PROGRAM_SO.exists():
        raise FileNotFoundError(
            f"{PROGRAM_SO} is missing: run `python scripts/build_solana_program.py`"
        )
    return PROGRAM_SO.read_bytes()


# ---------------------------------------------------------------------------------------
# Identifiers and PDAs
# ---------------------------------------------------------------------------------------


def channel_id(
    program_id: Pubkey,
    a: Pubkey,
    b: Pubkey,
    challenge_duration: int,
    nonce: bytes,
    mints: Sequence[bytes] = (NATIVE_MINT,),
    app: Pubkey | None = None,
) -> bytes:
    """sha256("CHENILLES-SOL-CHANNEL" | program_id | A | B | duration u64 | nonce 32 |
    n_assets u8 | mints [| app program]): commits to every parameter OPEN stores, so two
    channels with different assets, terms or apps can never share an id (nor a channel
    account)."""
    if len(nonce) != 32:
        raise ValueError("nonce must be 32 bytes")
    if not 1 <= len(mints) <= MAX_ASSETS or any(len(m) != 32 for m in mints):
        raise ValueError(f"1 to {MAX_ASSETS} mints of 32 bytes expected")
    return hashlib.sha256(
        CHANNEL_ID_DOMAIN
        + bytes(program_id)
        + bytes(a)
        + bytes(b)
        + struct.pack("<Q", challenge_duration)
        + nonce
        + bytes([len(mints)])
        + b"".join(mints)
        + (b"" if app is None else bytes(app))
    ).digest()


def channel_pda(program_id: Pubkey, cid: bytes) -> tuple[Pubkey, int]:
    return Pubkey.find_program_address([SEED_CHANNEL, cid], program_id)


def vault_pda(program_id: Pubkey, channel: Pubkey, mint: Pubkey) -> tuple[Pubkey, int]:
    """The token vault of ``mint`` for the channel account ``channel``."""
    return Pubkey.find_program_address([SEED_VAULT, bytes(channel), bytes(mint)], program_id)


def preimage_pda(program_id: Pubkey, payment_hash: bytes) -> tuple[Pubkey, int]:
    return Pubkey.find_program_address([SEED_PREIMAGE, payment_hash], program_id)


# ---------------------------------------------------------------------------------------
# State message
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HtlcTerms:
    id: int
    payer: int  # 0: A pays B, 1: B pays A
    amount: int
    payment_hash: bytes
    expiry: int  # unix seconds, compared with the Clock sysvar
    asset: int = 0  # index into the channel's assets


@dataclass(frozen=True)
class AssetBalances:
    mint: bytes  # 32 bytes; NATIVE_MINT for lamports
    amount_a: int
    amount_b: int


@dataclass(frozen=True)
class ChannelStateMsg:
    """``app_data``: ``None`` in a payment channel, the app data (possibly empty) in an
    app channel, whose messages end with ``app_len u16 | app data``."""

    program_id: Pubkey
    channel_id: bytes
    version: int
    final: bool
    assets: tuple[AssetBalances, ...]
    htlcs: tuple[HtlcTerms, ...] = ()
    app_data: bytes | None = None

    def encode(self) -> bytes:
        return encode_state_message(self)


def encode_state_message(st: ChannelStateMsg) -> bytes:
    """The exact bytes both participants sign (see the layout in chenilles_channel.c)."""
    if len(st.channel_id) != 32:
        raise ValueError("channel id must be 32 bytes")
    out = bytearray(MSG_MAGIC)
    out += bytes(st.program_id) + st.channel_id
    out += struct.pack("<QBB", st.version, 1 if st.final else 0, len(st.assets))
    for a in st.assets:
        if len(a.mint) != 32:
            raise ValueError("mint must be 32 bytes")
        out += a.mint + struct.pack("<QQ", a.amount_a, a.amount_b)
    out += struct.pack("<B", len(st.htlcs))
    for h in st.htlcs:
        if len(h.payment_hash) != 32:
            raise ValueError("payment hash must be 32 bytes")
        out += struct.pack("<QBBQ", h.id, h.payer, h.asset, h.amount) + h.payment_hash
        out += struct.pack("<q", h.expiry)
    if st.app_data is not None:
        if len(st.app_data) > MAX_APP_DATA:
            raise ValueError(f"at most {MAX_APP_DATA} bytes of app data")
        out += struct.pack("<H", len(st.app_data)) + st.app_data
    return bytes(out)


def decode_state_message(msg: bytes, has_app: bool = False) -> ChannelStateMsg:
    if msg[:16] != MSG_MAGIC:
        raise ValueError("not a Chenilles Solana state message")
    pid, cid = Pubkey.from_bytes(msg[16:48]), msg[48:80]
    version, final, n_assets = struct.unpack_from("<QBB", msg, 80)
    p = 90
    assets = []
    for _ in range(n_assets):
        a, b = struct.unpack_from("<QQ", msg, p + 32)
        assets.append(AssetBalances(msg[p : p + 32], a, b))
        p += 48
    n_htlcs = msg[p]
    p += 1
    htlcs = []
    for _ in range(n_htlcs):
        hid, payer, asset, amount = struct.unpack_from("<QBBQ", msg, p)
        (expiry,) = struct.unpack_from("<q", msg, p + 50)
        htlcs.append(HtlcTerms(hid, payer, amount, msg[p + 18 : p + 50], expiry, asset))
        p += 58
    app_data = None
    if has_app:
        (n,) = struct.unpack_from("<H", msg, p)
        app_data = msg[p + 2 : p + 2 + n]
        p += 2 + n
    if p != len(msg):
        raise ValueError("trailing bytes in state message")
    return ChannelStateMsg(pid, cid, version, bool(final), tuple(assets), tuple(htlcs), app_data)


# ---------------------------------------------------------------------------------------
# The app ABI (contracts/solana/chenilles_app.h): what the adjudicator sends an app
# program on a forced move. Encoded here too so that tests (and app authors) can call an
# app program directly, exactly as the adjudicator does through CPI.
# ---------------------------------------------------------------------------------------

APP_ABI_VALID_TRANSITION = 1
APP_INVALID_TRANSITION = 0x100
APP_BAD_CALL = 0x101


def encode_app_call(
    mover: int,
    from_balances: Sequence[tuple[int, int]],
    to_balances: Sequence[tuple[int, int]],
    from_data: bytes,
    to_data: bytes,
    *,
    now: int,
    from_final: bool = False,
    to_final: bool = False,
) -> bytes:
    """The instruction data of one ``valid transition`` call to an app program."""
    if len(from_balances) != len(to_balances) or not 1 <= len(from_balances) <= MAX_ASSETS:
        raise ValueError(f"1 to {MAX_ASSETS} assets, the same in both states")
    out = bytearray(
        struct.pack(
            "<BBBBB3xq",
            APP_ABI_VALID_TRANSITION,
            mover,
            len(from_balances),
            int(from_final),
            int(to_final),
            now,
        )
    )
    for a, b in (*from_balances, *to_balances):
        out += struct.pack("<QQ", a, b)
    for data in (from_data, to_data):
        out += struct.pack("<H", len(data)) + data
    return bytes(out)


# ---------------------------------------------------------------------------------------
# Account layouts
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelAccount:
    channel_id: bytes
    participants: tuple[Pubkey, Pubkey]
    nonce: bytes
    challenge_duration: int
    status: int
    bump: int
    final: bool
    withdrawn: int  # bit 2*asset + participant
    version: int
    deadline: int
    mints: tuple[bytes, ...]
    vault_bumps: tuple[int, ...]
    deposits: tuple[tuple[int, int], ...]
    balances: tuple[tuple[int, int], ...]
    payout: tuple[tuple[int, int], ...]
    htlcs: tuple[HtlcTerms, ...] = field(default=())
    app: Pubkey | None = None  # the app program of an app channel
    app_data: bytes = b""  # of the registered state
    #: who paid OPEN's rent: CLOSE_ACCOUNTS gives it back to this account only
    rent_payer: Pubkey = field(default_factory=Pubkey.default)

    @classmethod
    def decode(cls, data: bytes) -> ChannelAccount:
        if len(data) < CHANNEL_ACCOUNT_SIZE or data[:8] != CHANNEL_MAGIC:
            raise ValueError("not a Chenilles channel account")
        cid = data[8:40]
        a, b = Pubkey.from_bytes(data[40:72]), Pubkey.from_bytes(data[72:104])
        nonce = data[104:136]
        (dur,) = struct.unpack_from("<Q", data, 136)
        status, bump, final, n_htlcs, n_assets, withdrawn, has_app = struct.unpack_from(
            "<7B", data, 144
        )
        version, deadline = struct.unpack_from("<Qq", data, 152)
        mints = tuple(data[168 + 32 * k : 200 + 32 * k] for k in range(n_assets))
        bumps = tuple(data[296 : 296 + n_assets])

        def pairs(offset: int) -> tuple[tuple[int, int], ...]:
            return tuple(struct.unpack_from("<QQ", data, offset + 16 * k) for k in range(n_assets))

        htlcs = []
        for j in range(n_htlcs):
            o = 496 + 64 * j
            hid, payer, asset = struct.unpack_from("<QBB", data, o)
            (amount,) = struct.unpack_from("<Q", data, o + 16)
            (expiry,) = struct.unpack_from("<q", data, o + 56)
            htlcs.append(HtlcTerms(hid, payer, amount, data[o + 24 : o + 56], expiry, asset))
        app, app_data = None, b""
        if has_app:
            tail = data[CHANNEL_ACCOUNT_SIZE : CHANNEL_ACCOUNT_SIZE + APP_TAIL_SIZE]
            if len(tail) < APP_TAIL_SIZE:
                raise ValueError("an app channel account without its app tail")
            app = Pubkey.from_bytes(tail[:32])
            (n,) = struct.unpack_from("<H", tail, 32)
            app_data = tail[40 : 40 + n]
        return cls(
            cid,
            (a, b),
            nonce,
            dur,
            status,
            bump,
            bool(final),
            withdrawn,
            version,
            deadline,
            mints,
            bumps,
            pairs(304),
            pairs(368),
            pairs(432),
            tuple(htlcs),
            app,
            app_data,
            Pubkey.from_bytes(data[1008:1040]),
        )


@dataclass(frozen=True)
class PreimageRecord:
    payment_hash: bytes
    preimage: bytes
    revealed_at: int
    slot: int

    @classmethod
    def decode(cls, data: bytes) -> PreimageRecord:
        if len(data) < PREIMAGE_RECORD_SIZE or data[:8] != b"PREIMAG1":
            raise ValueError("not a Chenilles preimage record")
        revealed_at, slot = struct.unpack_from("<qQ", data, 72)
        return cls(data[8:40], data[40:72], revealed_at, slot)


# ---------------------------------------------------------------------------------------
# Instructions
# ---------------------------------------------------------------------------------------


def ed25519_verify_ix(message: bytes, signers: Sequence[tuple[bytes, bytes]]) -> Instruction:
    """Ed25519 precompile instruction: one message, one (pubkey, signature) per signer, every
    offset pointing into this instruction (instruction index 0xFFFF)."""
    n = len(signers)
    head = 2 + 14 * n
    body = bytearray()
    offsets = bytearray()
    for pk, sig in signers:
        if len(pk) != 32 or len(sig) != 64:
            raise ValueError("pubkey must be 32 bytes and signature 64 bytes")
        pk_off = head + len(body)
        body += pk
        sig_off = head + len(body)
        body += sig
        offsets += struct.pack("<7H", sig_off, 0xFFFF, pk_off, 0xFFFF, 0, len(message), 0xFFFF)
    msg_off = head + len(body)
    # patch the message offset into every entry
    for i in range(n):
        struct.pack_into("<H", offsets, 14 * i + 8, msg_off)
    data = bytes([n, 0]) + bytes(offsets) + bytes(body) + message
    return Instruction(ED25519_PROGRAM_ID, data, [])


def sign_state(message: bytes, a: Keypair, b: Keypair) -> Instruction:
    """The Ed25519 instruction carrying both participants' signatures (A first, then B)."""
    return ed25519_verify_ix(
        message,
        [
            (bytes(a.pubkey()), bytes(a.sign_message(message))),
            (bytes(b.pubkey()), bytes(b.sign_message(message))),
        ],
    )


def open_ix(
    program_id: Pubkey,
    payer: Pubkey,
    a: Pubkey,
    b: Pubkey,
    challenge_duration: int,
    nonce: bytes,
    rent_lamports: int,
    *,
    mints: Sequence[bytes] = (NATIVE_MINT,),
    vault_rent_lamports: int = 0,
    app: Pubkey | None = None,
) -> tuple[Instruction, bytes, Pubkey]:
    """Creates the channel account and a vault per SPL mint (``vault_rent_lamports`` each);
    with ``app``, an app channel (``rent_lamports`` must cover the larger account)."""
    cid = channel_id(program_id, a, b, challenge_duration, nonce, mints, app)
    pda, bump = channel_pda(program_id, cid)
    metas = [
        AccountMeta(payer, True, True),
        AccountMeta(pda, False, True),
        AccountMeta(SYSTEM_PROGRAM_ID, False, False),
        AccountMeta(TOKEN_PROGRAM_ID, False, False),
    ]
    bumps = bytearray()
    for m in mints:
        if m == NATIVE_MINT:
            bumps.append(0)
            continue
        mint = Pubkey.from_bytes(m)
        vault, vbump = vault_pda(program_id, pda, mint)
        metas += [AccountMeta(mint, False, False), AccountMeta(vault, False, True)]
        bumps.append(vbump)
    data = (
        bytes([IX_OPEN])
        + bytes(a)
        + bytes(b)
        + struct.pack("<Q", challenge_duration)
        + nonce
        + struct.pack("<BQQB", bump, rent_lamports, vault_rent_lamports, len(mints))
        + b"".join(mints)
        + bytes(bumps)
        + (b"" if app is None else bytes(app))
    )
    return Instruction(program_id, data, metas), cid, pda


def deposit_ix(
    program_id: Pubkey,
    funder: Pubkey,
    channel: Pubkey,
    participant: int,
    amount: int,
    *,
    asset: int = 0,
    mint: Pubkey | None = None,
    source: Pubkey | None = None,
) -> Instruction:
    """SOL (``mint`` None) or SPL: ``source`` is the funder's token account of ``mint``."""
    metas = [AccountMeta(funder, True, True), AccountMeta(channel, False, True)]
    if mint is None:
        metas.append(AccountMeta(SYSTEM_PROGRAM_ID, False, False))
    else:
        if source is None:
            raise ValueError("an SPL deposit needs the funder's token account")
        vault, _ = vault_pda(program_id, channel, mint)
        metas += [
            AccountMeta(TOKEN_PROGRAM_ID, False, False),
            AccountMeta(source, False, True),
            AccountMeta(vault, False, True),
        ]
    return Instruction(
        program_id, struct.pack("<BBBQ", IX_DEPOSIT, participant, asset, amount), metas
    )


@dataclass(frozen=True)
class TokenLeg:
    """The accounts one SPL asset needs in a cooperative close."""

    vault: Pubkey
    to_a: Pubkey
    to_b: Pubkey


def coop_close_ix(
    program_id: Pubkey,
    channel: Pubkey,
    a: Pubkey,
    b: Pubkey,
    ed25519_ix_index: int = 0,
    tokens: Sequence[TokenLeg] = (),
) -> Instruction:
    """``tokens``: one leg per SPL asset of the channel, in asset order."""
    metas = [
        AccountMeta(channel, False, True),
        AccountMeta(a, False, True),
        AccountMeta(b, False, True),
        AccountMeta(INSTRUCTIONS_SYSVAR_ID, False, False),
    ]
    if tokens:
        metas.append(AccountMeta(TOKEN_PROGRAM_ID, False, False))
    for leg in tokens:
        metas += [
            AccountMeta(leg.vault, False, True),
            AccountMeta(leg.to_a, False, True),
            AccountMeta(leg.to_b, False, True),
        ]
    return Instruction(program_id, bytes([IX_COOP_CLOSE, ed25519_ix_index]), metas)


def register_ix(program_id: Pubkey, channel: Pubkey, ed25519_ix_index: int = 0) -> Instruction:
    return Instruction(
        program_id,
        bytes([IX_REGISTER, ed25519_ix_index]),
        [
            AccountMeta(channel, False, True),
            AccountMeta(INSTRUCTIONS_SYSVAR_ID, False, False),
        ],
    )


def progress_ix(
    program_id: Pubkey, channel: Pubkey, app: Pubkey, mover: int, ed25519_ix_index: int = 0
) -> Instruction:
    """A forced move: the Ed25519 instruction at ``ed25519_ix_index`` carries the mover's
    one signature over the new state's message."""
    return Instruction(
        program_id,
        bytes([IX_PROGRESS, ed25519_ix_index, mover]),
        [
            AccountMeta(channel, False, True),
            AccountMeta(INSTRUCTIONS_SYSVAR_ID, False, False),
            AccountMeta(app, False, False),
        ],
    )


def conclude_ix(
    program_id: Pubkey, channel: Pubkey, payment_hashes: Iterable[bytes] = ()
) -> Instruction:
    """`payment_hashes`: those of the registered state's HTLCs, in order."""
    metas = [AccountMeta(channel, False, True)]
    bumps = bytearray()
    for h in payment_hashes:
        pda, bump = preimage_pda(program_id, h)
        metas.append(AccountMeta(pda, False, False))
        bumps.append(bump)
    return Instruction(program_id, bytes([IX_CONCLUDE]) + bytes(bumps), metas)


def withdraw_ix(
    program_id: Pubkey,
    channel: Pubkey,
    participant: int,
    to: Pubkey,
    *,
    asset: int = 0,
    vault: Pubkey | None = None,
) -> Instruction:
    """``to``: the participant's own account (SOL) or its token account (SPL, with ``vault``)."""
    metas = [AccountMeta(channel, False, True), AccountMeta(to, False, True)]
    if vault is not None:
        metas += [AccountMeta(vault, False, True), AccountMeta(TOKEN_PROGRAM_ID, False, False)]
    return Instruction(program_id, bytes([IX_WITHDRAW, participant, asset]), metas)


def close_accounts_ix(
    program_id: Pubkey, channel: Pubkey, rent_payer: Pubkey, vaults: Sequence[Pubkey] = ()
) -> Instruction:
    """Gives the rent of a finished channel's account and ``vaults`` (one per SPL asset, in
    asset order) back to ``rent_payer`` (the program checks it is who paid at OPEN). Needs
    no signature: the lamports can go nowhere else."""
    metas = [AccountMeta(channel, False, True), AccountMeta(rent_payer, False, True)]
    if vaults:
        metas.append(AccountMeta(TOKEN_PROGRAM_ID, False, False))
    metas += [AccountMeta(v, False, True) for v in vaults]
    return Instruction(program_id, bytes([IX_CLOSE_ACCOUNTS]), metas)


def reveal_ix(
    program_id: Pubkey, payer: Pubkey, preimage: bytes, rent_lamports: int
) -> tuple[Instruction, Pubkey]:
    if len(preimage) != 32:
        raise ValueError("preimage must be 32 bytes")
    pda, bump = preimage_pda(program_id, hashlib.sha256(preimage).digest())
    data = bytes([IX_REVEAL]) + preimage + struct.pack("<BQ", bump, rent_lamports)
    return Instruction(
        program_id,
        data,
        [
            AccountMeta(payer, True, True),
            AccountMeta(pda, False, True),
            AccountMeta(SYSTEM_PROGRAM_ID, False, False),
        ],
    ), pda


# ---------------------------------------------------------------------------------------
# Events (sol_log_data lines "Program data: <base64>")
# ---------------------------------------------------------------------------------------

EV_OPENED, EV_FUNDED, EV_REGISTERED, EV_CONCLUDED, EV_WITHDRAWN, EV_REVEALED = range(6)
EV_PROGRESSED = 6
EV_CLOSED = 7  # the channel's accounts closed: ``amount`` lamports back to the rent payer


@dataclass(frozen=True)
class ProgramEvent:
    """One event the program logged. Fields not carried by an event's kind are zero."""

    kind: int
    channel_id: bytes = b""
    asset: int = 0
    participant: int = 0
    amount: int = 0
    version: int = 0
    deadline: int = 0
    cooperative: bool = False
    payment_hash: bytes = b""
    preimage: bytes = b""
    time: int = 0
    slot: int = 0
    final: bool = False
    balances: tuple[tuple[int, int], ...] = ()
    app_data: bytes = b""


def decode_event(blob: bytes) -> ProgramEvent | None:
    """The event in one log field; ``None`` for anything this program does not log."""
    if not blob:
        return None
    kind, cid = blob[0], blob[1:33]
    if kind == EV_OPENED and len(blob) == 33:
        return ProgramEvent(kind, cid)
    if kind in (EV_FUNDED, EV_WITHDRAWN) and len(blob) == 43:
        asset, who, amount = struct.unpack_from("<BBQ", blob, 33)
        return ProgramEvent(kind, cid, asset=asset, participant=who, amount=amount)
    if kind == EV_CLOSED and len(blob) == 41:
        (amount,) = struct.unpack_from("<Q", blob, 33)
        return ProgramEvent(kind, cid, amount=amount)
    if kind == EV_REGISTERED and len(blob) == 49:
        version, deadline = struct.unpack_from("<Qq", blob, 33)
        return ProgramEvent(kind, cid, version=version, deadline=deadline)
    if kind == EV_CONCLUDED and len(blob) == 42:
        (version,) = struct.unpack_from("<Q", blob, 33)
        return ProgramEvent(kind, cid, version=version, cooperative=bool(blob[41]))
    if kind == EV_PROGRESSED and len(blob) >= 52:
        version, deadline, mover, final, n = struct.unpack_from("<QqBBB", blob, 33)
        end = 52 + 16 * n
        if n > MAX_ASSETS or len(blob) < end + 2:
            return None
        balances = tuple(struct.unpack_from("<QQ", blob, 52 + 16 * k) for k in range(n))
        (app_len,) = struct.unpack_from("<H", blob, end)
        if len(blob) != end + 2 + app_len:
            return None
        return ProgramEvent(
            kind,
            cid,
            participant=mover,
            version=version,
            deadline=deadline,
            final=bool(final),
            balances=balances,
            app_data=blob[end + 2 :],
        )
    if kind == EV_REVEALED and len(blob) == 81:
        at, slot = struct.unpack_from("<qQ", blob, 65)
        return ProgramEvent(kind, payment_hash=cid, preimage=blob[33:65], time=at, slot=slot)
    return None


def events_from_logs(program_id: Pubkey, logs: Iterable[str]) -> list[ProgramEvent]:
    """Events logged by ``program_id`` itself (not by programs it invoked, nor by others)."""
    stack: list[str] = []
    me = str(program_id)
    out: list[ProgramEvent] = []
    for line in logs:
        parts = line.split()
        if len(parts) < 3 or parts[0] != "Program" or parts[1].endswith(":"):
            pass  # "Program log: ...", "Program data: ...", "Program return: ..."
        elif parts[2] == "invoke":
            stack.append(parts[1])
        elif parts[2] in ("success", "failed:") and stack:
            stack.pop()
        if line.startswith("Program data: ") and stack and stack[-1] == me:
            for field_b64 in line[len("Program data: ") :].split():
                event = decode_event(base64.b64decode(field_b64))
                if event is not None:
                    out.append(event)
    return out
