"""SPL-token assets in the Chenilles channel program, run in LiteSVM with its SPL Token program.

Each test builds the accounts by hand (no backend), so the attacker cases can substitute any
account: another mint's vault, someone else's token account, a fake token program.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from chenilles_solana import program_client as pc
from chenilles_solana import spl_token as spl
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from solders.transaction_status import InstructionErrorCustom, TransactionErrorInstructionError

from tests.solana.relayed import Relayed

pytestmark = pytest.mark.solana

SOL = 1_000_000_000
DURATION = 100
T0 = 1_700_000_000
NONCE = bytes(range(32))


@dataclass
class TokenEnv(Relayed):
    svm: LiteSVM
    pid: Pubkey
    relayer: Keypair
    a: Keypair
    b: Keypair
    mints: list[Pubkey]
    cid: bytes
    chan: Pubkey

    def token_balances(self) -> dict[Pubkey, int]:
        out = {}
        for m in self.mints:
            for owner in (self.a.pubkey(), self.b.pubkey(), self.chan):
                for acct in (spl.associated_token_address(owner, m), self.vault(m)):
                    raw = self.svm.get_account(acct)
                    out[acct] = spl.TokenAccountData.decode(bytes(raw.data)).amount if raw else 0
        return out

    def fails(self, ixs, code, signers=()):
        """Expects program error ``code`` (name or int) and that no token or lamport moved."""
        tokens = self.token_balances()
        lamports = {k: self.svm.get_balance(k) for k in (self.chan, self.a.pubkey())}
        data = bytes(self.svm.get_account(self.chan).data)
        res = self.send(ixs, signers)
        assert hasattr(res, "err"), "transaction unexpectedly succeeded"
        err = res.err()
        assert isinstance(err, TransactionErrorInstructionError), err
        assert isinstance(err.err, InstructionErrorCustom), err
        expected = pc.ERROR_CODES[code] if isinstance(code, str) else code
        assert err.err.code == expected, f"got {pc.ERRORS.get(err.err.code, err.err.code)}"
        assert self.token_balances() == tokens
        assert {k: self.svm.get_balance(k) for k in lamports} == lamports
        assert bytes(self.svm.get_account(self.chan).data) == data

    def vault(self, mint: Pubkey) -> Pubkey:
        return pc.vault_pda(self.pid, self.chan, mint)[0]

    def ata(self, owner: Keypair | Pubkey, mint: Pubkey) -> Pubkey:
        key = owner.pubkey() if isinstance(owner, Keypair) else owner
        return spl.associated_token_address(key, mint)

    def tokens_of(self, owner: Keypair | Pubkey, mint: Pubkey) -> int:
        raw = self.svm.get_account(self.ata(owner, mint))
        return spl.TokenAccountData.decode(bytes(raw.data)).amount if raw else 0

    def state(self, version, amounts, final=False, htlcs=()):
        assets = [pc.AssetBalances(pc.NATIVE_MINT, *amounts[0])]
        assets += [
            pc.AssetBalances(bytes(m), *amt) for m, amt in zip(self.mints, amounts[1:], strict=True)
        ]
        return pc.ChannelStateMsg(
            self.pid, self.cid, version, final, tuple(assets), tuple(htlcs)
        ).encode()

    def signed(self, msg):
        return pc.sign_state(msg, self.a, self.b)

    def deposit(self, who: Keypair, index: int, asset: int, amount: int):
        mint = self.mints[asset - 1]
        return pc.deposit_ix(
            self.pid,
            who.pubkey(),
            self.chan,
            index,
            amount,
            asset=asset,
            mint=mint,
            source=self.ata(who, mint),
        )

    def withdraw(self, index: int, asset: int, to: Pubkey, vault: Pubkey | None = None):
        mint = self.mints[asset - 1]
        return pc.withdraw_ix(
            self.pid, self.chan, index, to, asset=asset, vault=vault or self.vault(mint)
        )

    def account(self) -> pc.ChannelAccount:
        return pc.ChannelAccount.decode(bytes(self.svm.get_account(self.chan).data))


def new_mint(svm: LiteSVM, payer: Keypair, holders: list[Keypair], amount: int) -> Pubkey:
    mint, authority = Keypair(), Keypair()
    ixs = [
        spl.create_account_ix(
            payer.pubkey(),
            mint.pubkey(),
            svm.minimum_balance_for_rent_exemption(spl.MINT_SIZE),
            spl.MINT_SIZE,
        ),
        spl.initialize_mint2_ix(mint.pubkey(), authority.pubkey(), 6),
    ]
    for h in holders:
        ata = spl.associated_token_address(h.pubkey(), mint.pubkey())
        ixs += [
            spl.create_ata_idempotent_ix(payer.pubkey(), h.pubkey(), mint.pubkey()),
            spl.mint_to_ix(mint.pubkey(), ata, authority.pubkey(), amount),
        ]
    tx = Transaction([payer, mint, authority], Message(ixs, payer.pubkey()), svm.latest_blockhash())
    res = svm.send_transaction(tx)
    assert not hasattr(res, "err"), res
    return mint.pubkey()


def make_env(n_mints: int = 2, fund: bool = True) -> TokenEnv:
    svm = LiteSVM()
    pid = Pubkey.new_unique()
    svm.add_program(pid, pc.load_program())
    relayer, a, b, mallory = Keypair(), Keypair(), Keypair(), Keypair()
    for k in (relayer, a, b, mallory):
        svm.airdrop(k.pubkey(), 100 * SOL)
    clock = svm.get_clock()
    clock.unix_timestamp = T0
    svm.set_clock(clock)
    mints = [new_mint(svm, relayer, [a, b, mallory], 1_000_000) for _ in range(n_mints)]
    ix, cid, chan = pc.open_ix(
        pid,
        relayer.pubkey(),
        a.pubkey(),
        b.pubkey(),
        DURATION,
        NONCE,
        svm.minimum_balance_for_rent_exemption(pc.CHANNEL_ACCOUNT_SIZE),
        mints=[pc.NATIVE_MINT, *(bytes(m) for m in mints)],
        vault_rent_lamports=svm.minimum_balance_for_rent_exemption(spl.TOKEN_ACCOUNT_SIZE),
    )
    env = TokenEnv(svm, pid, relayer, a, b, mints, cid, chan)
    env.mallory = mallory  # type: ignore[attr-defined]
    env.ok([ix])
    if fund:
        env.ok([pc.deposit_ix(pid, a.pubkey(), chan, 0, SOL)], [a])
        env.ok([env.deposit(a, 0, 1, 600)], [a])
        env.ok([env.deposit(b, 1, 1, 400)], [b])
    return env


@pytest.fixture
def env() -> TokenEnv:
    return make_env()


def test_open_creates_one_vault_per_mint(env):
    acct = env.account()
    assert acct.mints == (pc.NATIVE_MINT, *(bytes(m) for m in env.mints))
    assert acct.deposits == ((SOL, 0), (600, 400), (0, 0))
    for m in env.mints:
        vault = spl.TokenAccountData.decode(bytes(env.svm.get_account(env.vault(m)).data))
        assert (vault.mint, vault.owner) == (m, env.chan)
    assert env.tokens_of(env.chan, env.mints[0]) == 0  # the vault is a PDA, not the ATA
    raw = env.svm.get_account(env.vault(env.mints[0]))
    assert spl.TokenAccountData.decode(bytes(raw.data)).amount == 1000
    assert env.tokens_of(env.a, env.mints[0]) == 1_000_000 - 600


def test_deposit_and_withdraw_token_after_dispute(env):
    m = env.mints[0]
    msg = env.state(3, [(SOL, 0), (250, 750), (0, 0)])
    env.ok([env.signed(msg), pc.register_ix(env.pid, env.chan)])
    clock = env.svm.get_clock()
    clock.unix_timestamp = T0 + DURATION
    env.svm.set_clock(clock)
    env.ok([pc.conclude_ix(env.pid, env.chan)])
    a0, b0 = env.tokens_of(env.a, m), env.tokens_of(env.b, m)
    env.ok([env.withdraw(0, 1, env.ata(env.a, m))])
    env.fails([env.withdraw(0, 1, env.ata(env.a, m))], "ALREADY_WITHDRAWN")
    env.ok([env.withdraw(1, 1, env.ata(env.b, m))])
    assert (env.tokens_of(env.a, m), env.tokens_of(env.b, m)) == (a0 + 250, b0 + 750)
    # nothing of the second mint to pay, but the receiver must still be right
    env.ok([env.withdraw(0, 2, env.ata(env.a, env.mints[1]))])
    env.ok([pc.withdraw_ix(env.pid, env.chan, 0, env.a.pubkey())])
    raw = env.svm.get_account(env.vault(m))
    assert spl.TokenAccountData.decode(bytes(raw.data)).amount == 0


def test_cooperative_close_pays_every_asset(env):
    m1, m2 = env.mints
    a_sol = env.svm.get_balance(env.a.pubkey())
    msg = env.state(2, [(SOL // 2, SOL // 2), (100, 900), (0, 0)], final=True)
    legs = [pc.TokenLeg(env.vault(m), env.ata(env.a, m), env.ata(env.b, m)) for m in (m1, m2)]
    a0, b0 = env.tokens_of(env.a, m1), env.tokens_of(env.b, m1)
    env.ok(
        [
            env.signed(msg),
            pc.coop_close_ix(env.pid, env.chan, env.a.pubkey(), env.b.pubkey(), tokens=legs),
        ]
    )
    assert env.tokens_of(env.a, m1) == a0 + 100 and env.tokens_of(env.b, m1) == b0 + 900
    assert env.svm.get_balance(env.a.pubkey()) == a_sol + SOL // 2
    assert env.account().status == pc.ST_CLOSED


def _concluded(env: TokenEnv) -> None:
    msg = env.state(1, [(SOL, 0), (500, 500), (0, 0)], final=True)
    env.ok([env.signed(msg), pc.register_ix(env.pid, env.chan)])
    env.ok([pc.conclude_ix(env.pid, env.chan)])


def test_attacker_substitutes_the_vault_of_another_mint(env):
    m1, m2 = env.mints
    _concluded(env)
    env.fails([env.withdraw(0, 1, env.ata(env.a, m1), vault=env.vault(m2))], "BAD_VAULT")
    # a token account of the right mint owned by the channel, but not the vault PDA
    env.fails([env.withdraw(0, 1, env.ata(env.a, m1), vault=env.ata(env.b, m1))], "BAD_VAULT")
    # on deposit too: tokens of mint 1 cannot be parked in mint 2's vault
    fresh = make_env(fund=False)
    ix = fresh.deposit(fresh.a, 0, 1, 10)
    metas = list(ix.accounts)
    metas[4] = AccountMeta(fresh.vault(fresh.mints[1]), False, True)
    fresh.fails([Instruction(fresh.pid, ix.data, metas)], "BAD_VAULT", [fresh.a])


def test_attacker_substitutes_a_token_account_owned_by_someone_else(env):
    m1, m2 = env.mints
    _concluded(env)
    mallory = env.mallory  # type: ignore[attr-defined]
    env.fails([env.withdraw(0, 1, env.ata(mallory, m1))], "BAD_TOKEN_ACCOUNT")
    env.fails([env.withdraw(0, 1, env.ata(env.b, m1))], "BAD_TOKEN_ACCOUNT")
    # the participant's own token account, but of another mint
    env.fails([env.withdraw(0, 1, env.ata(env.a, m2))], "BAD_TOKEN_ACCOUNT")
    # a plain system account is not a token account
    env.fails([env.withdraw(0, 1, env.a.pubkey())], "BAD_TOKEN_ACCOUNT")


def test_attacker_substitutes_a_fake_token_program(env):
    m1 = env.mints[0]
    _concluded(env)
    fake = Pubkey.new_unique()
    env.svm.add_program(fake, pc.load_program())  # any executable program that is not SPL
    ix = env.withdraw(0, 1, env.ata(env.a, m1))
    metas = list(ix.accounts)
    metas[3] = AccountMeta(fake, False, False)
    env.fails([Instruction(env.pid, ix.data, metas)], "WRONG_TOKEN_PROGRAM")
    fresh = make_env(fund=False)
    fresh.svm.add_program(fake, pc.load_program())
    ix = fresh.deposit(fresh.a, 0, 1, 10)
    metas = list(ix.accounts)
    metas[2] = AccountMeta(fake, False, False)
    fresh.fails([Instruction(fresh.pid, ix.data, metas)], "WRONG_TOKEN_PROGRAM", [fresh.a])


def test_deposit_rules():
    env = make_env(fund=False)
    m1, m2 = env.mints
    mallory = env.mallory  # type: ignore[attr-defined]
    # only the participant itself deposits for itself
    ix = pc.deposit_ix(
        env.pid, mallory.pubkey(), env.chan, 0, 5, asset=1, mint=m1, source=env.ata(mallory, m1)
    )
    env.fails([ix], "NOT_PARTICIPANT", [mallory])
    # tokens of another mint: the token program refuses (MintMismatch = 3), nothing moves
    ix = pc.deposit_ix(
        env.pid, env.a.pubkey(), env.chan, 0, 5, asset=1, mint=m1, source=env.ata(env.a, m2)
    )
    env.fails([ix], 3, [env.a])
    env.ok([env.deposit(env.a, 0, 1, 5)], [env.a])
    env.fails([env.deposit(env.a, 0, 1, 5)], "ALREADY_FUNDED", [env.a])
    # an asset the channel does not have
    bad = pc.deposit_ix(env.pid, env.a.pubkey(), env.chan, 0, 5, asset=7)
    env.fails([bad], "BAD_ASSET", [env.a])


def test_unfunded_channel_refunds_deposits_from_version_0():
    env = make_env(fund=False)
    m1 = env.mints[0]
    env.ok([env.deposit(env.a, 0, 1, 300)], [env.a])  # B never funds its 700
    v0 = env.state(0, [(0, 0), (300, 700), (0, 0)])
    env.ok([env.signed(v0), pc.register_ix(env.pid, env.chan)])
    # a later version must conserve: it cannot be used to grab the missing funds
    v1 = env.state(1, [(0, 0), (0, 1000), (0, 0)])
    env.fails([env.signed(v1), pc.register_ix(env.pid, env.chan)], "NOT_CONSERVING")
    clock = env.svm.get_clock()
    clock.unix_timestamp = T0 + DURATION
    env.svm.set_clock(clock)
    env.ok([pc.conclude_ix(env.pid, env.chan)])
    assert env.account().payout[1] == (300, 0)
    a0 = env.tokens_of(env.a, m1)
    env.ok([env.withdraw(0, 1, env.ata(env.a, m1))])
    assert env.tokens_of(env.a, m1) == a0 + 300


def test_open_checks_mint_and_vault_accounts():
    env = make_env(n_mints=1, fund=False)
    m = env.mints[0]
    rent = env.svm.minimum_balance_for_rent_exemption(pc.CHANNEL_ACCOUNT_SIZE)
    vrent = env.svm.minimum_balance_for_rent_exemption(spl.TOKEN_ACCOUNT_SIZE)
    ix, _, _ = pc.open_ix(
        env.pid,
        env.relayer.pubkey(),
        env.a.pubkey(),
        env.b.pubkey(),
        DURATION,
        bytes(32),
        rent,
        mints=[bytes(m)],
        vault_rent_lamports=vrent,
    )
    metas = list(ix.accounts)
    swapped = list(metas)
    swapped[5] = AccountMeta(Pubkey.new_unique(), False, True)
    env.fails([Instruction(env.pid, ix.data, swapped)], "BAD_VAULT")
    swapped = list(metas)
    swapped[4] = AccountMeta(env.a.pubkey(), False, False)
    env.fails([Instruction(env.pid, ix.data, swapped)], "BAD_MINT")
    swapped = list(metas)
    swapped[3] = AccountMeta(pc.SYSTEM_PROGRAM_ID, False, False)
    env.fails([Instruction(env.pid, ix.data, swapped)], "WRONG_TOKEN_PROGRAM")
    env.ok([ix])
