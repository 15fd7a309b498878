"""What every devnet starts from, identically at each start (before the journal replays).

- LiteSVM with its default programs (System, SPL Token and Token-2022, Associated Token
  Account, Memo, the precompiles) and sysvars;
- our channel program, the committed build, at the fixed ``PROGRAM_ID``;
- a faucet that pays ``requestAirdrop`` (a real System transfer it signs, as
  solana-test-validator's faucet does);
- a test SPL mint (6 decimals) whose mint authority is a *well-known* development key, as
  anvil's funded accounts are: anyone may mint test tokens on a devnet, never elsewhere.

The keys derive from documented seeds: ``sha256("chenilles/solana/devnet/<name>")``.
"""

from __future__ import annotations

import hashlib
import struct

from solders.account import Account
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey

from .. import spl_token as spl
from ..program_client import DEFAULT_PROGRAM_ID

#: The channel program's address on every devnet: sha256("chenilles/solana/program").
PROGRAM_ID = DEFAULT_PROGRAM_ID
LAMPORTS_PER_SOL = 1_000_000_000
#: The faucet's starting balance (half a billion SOL) and the most one airdrop may ask.
FAUCET_LAMPORTS = 500_000_000 * LAMPORTS_PER_SOL
MAX_AIRDROP = 1_000_000 * LAMPORTS_PER_SOL
TEST_MINT_DECIMALS = 6


def _seed(name: str) -> bytes:
    return hashlib.sha256(b"chenilles/solana/devnet/" + name.encode()).digest()


FAUCET = Keypair.from_seed(_seed("faucet"))
TEST_MINT = Pubkey.from_bytes(_seed("test-mint"))
#: Secret seed (32 bytes, hex) of the test mint's authority: public on purpose.
TEST_MINT_AUTHORITY_SEED = _seed("test-mint-authority")
TEST_MINT_AUTHORITY = Keypair.from_seed(TEST_MINT_AUTHORITY_SEED)

#: Owners whose accounts are code or runtime state, not the ledger's data: the journal
#: does not snapshot them (genesis re-creates them; deploying programs over RPC is not
#: supported).
NOT_DATA_OWNERS = frozenset(
    Pubkey.from_string(k)
    for k in (
        "Sysvar1111111111111111111111111111111111111",
        "NativeLoader1111111111111111111111111111111",
        "BPFLoader1111111111111111111111111111111111",
        "BPFLoader2111111111111111111111111111111111",
        "BPFLoaderUpgradeab1e11111111111111111111111",
        "LoaderV411111111111111111111111111111111111",
    )
)


def mint_account(svm: LiteSVM, authority: Pubkey, decimals: int) -> Account:
    """An initialized SPL mint (spl-token's 82-byte ``Mint``), supply 0, no freeze authority."""
    data = (
        struct.pack("<I", 1)
        + bytes(authority)
        + struct.pack("<QBB", 0, decimals, 1)
        + struct.pack("<I", 0)
        + bytes(32)
    )
    assert len(data) == spl.MINT_SIZE
    return Account(
        svm.minimum_balance_for_rent_exemption(spl.MINT_SIZE),
        data,
        spl.TOKEN_PROGRAM_ID,
        False,
        0,  # as LiteSVM leaves every account it creates
    )


def build_svm(program: bytes) -> LiteSVM:
    """A fresh LiteSVM holding the genesis state.

    The blockhash check and the transaction history are LiteSVM's own shortcuts (one fixed
    blockhash, an in-memory list of signatures): the devnet checks blockhash age and
    duplicates itself, against its slot clock and its journal, so both are off here.
    """
    svm = LiteSVM().with_blockhash_check(False).with_transaction_history(0)
    svm.add_program(PROGRAM_ID, program)
    svm.set_account(FAUCET.pubkey(), Account(FAUCET_LAMPORTS, b"", spl.SYSTEM_PROGRAM_ID, False, 0))
    svm.set_account(TEST_MINT, mint_account(svm, TEST_MINT_AUTHORITY.pubkey(), TEST_MINT_DECIMALS))
    return svm
