"""CLOSE_ACCOUNTS: the rent of a finished channel's account and vaults goes back to its payer.

The real program in LiteSVM, with LiteSVM's SPL Token program. The opener (who pays the
rent at OPEN) is a key of its own that pays no transaction fee (a relayer does), so its
balance shows the rent leaving and coming back to the lamport. Attacker's cases first:
closing too early, with a payout still in the channel, to another account, twice, with
stray tokens in a vault, with substituted accounts, and reopening the closed channel id.
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
TOKEN_ERROR_NON_NATIVE_HAS_BALANCE = 11  # spl-token TokenError::NonNativeHasBalance


@dataclass
class Env(Relayed):
    svm: LiteSVM
    pid: Pubkey
    relayer: Keypair  # pays every transaction fee
    opener: Keypair  # pays OPEN's rent, nothing else
    a: Keypair
    b: Keypair
    mallory: Keypair
    mint: Pubkey | None
    cid: bytes
    chan: Pubkey
    open_ix: Instruction
    rent: int  # what OPEN took from the opener: channel account + vault

    def watched(self) -> dict[str, object]:
        """Every lamport and token balance a close could move, and the channel's data."""
        keys = [self.chan, self.opener.pubkey(), self.a.pubkey(), self.b.pubkey()]
        keys += [self.mallory.pubkey(), *self.vaults()]
        out: dict[str, object] = {str(k): self.svm.get_balance(k) for k in keys}
        for v in self.vaults():
            out[f"tokens {v}"] = self.tokens(v)
        raw = self.svm.get_account(self.chan)
        out["data"] = bytes(raw.data) if raw else b""
        return out

    def fails(self, ixs, code, signers=(), program_error=True):
        """Expects error ``code`` (a name of pc.ERRORS, or an int: the SPL Token program's
        with ``program_error=False``) and that nothing moved."""
        before = self.watched()
        res = self.send(ixs, signers)
        assert hasattr(res, "err"), "transaction unexpectedly succeeded"
        err = res.err()
        assert isinstance(err, TransactionErrorInstructionError), err
        assert isinstance(err.err, InstructionErrorCustom), err
        expected = pc.ERROR_CODES[code] if isinstance(code, str) else code
        got = err.err.code
        assert got == expected, f"got {pc.ERRORS.get(got, got) if program_error else got}"
        assert self.watched() == before, "a refused transaction moved something"

    def vaults(self) -> list[Pubkey]:
        return [] if self.mint is None else [pc.vault_pda(self.pid, self.chan, self.mint)[0]]

    def tokens(self, account: Pubkey) -> int:
        raw = self.svm.get_account(account)
        return spl.TokenAccountData.decode(bytes(raw.data)).amount if raw else 0

    def ata(self, owner: Keypair) -> Pubkey:
        assert self.mint is not None
        return spl.associated_token_address(owner.pubkey(), self.mint)

    def close(self, dest: Pubkey | None = None, vaults: list[Pubkey] | None = None):
        return pc.close_accounts_ix(
            self.pid,
            self.chan,
            dest or self.opener.pubkey(),
            self.vaults() if vaults is None else vaults,
        )

    def state(self, version, sol, tok=None, final=False):
        assets = [pc.AssetBalances(pc.NATIVE_MINT, *sol)]
        if self.mint is not None:
            assets.append(pc.AssetBalances(bytes(self.mint), *(tok or (0, 0))))
        msg = pc.ChannelStateMsg(self.pid, self.cid, version, final, tuple(assets))
        return pc.sign_state(msg.encode(), self.a, self.b)

    def coop_close(self, version, sol, tok=None):
        legs = [pc.TokenLeg(v, self.ata(self.a), self.ata(self.b)) for v in self.vaults()]
        close = pc.coop_close_ix(self.pid, self.chan, self.a.pubkey(), self.b.pubkey(), 0, legs)
        return [self.state(version, sol, tok, final=True), close]

    def withdraw(self, who: int, asset: int = 0):
        if asset == 0:
            to = (self.a, self.b)[who].pubkey()
            return pc.withdraw_ix(self.pid, self.chan, who, to)
        to = self.ata((self.a, self.b)[who])
        return pc.withdraw_ix(self.pid, self.chan, who, to, asset=1, vault=self.vaults()[0])

    def dispute(self, sol, tok=None) -> None:
        """Registers a final state and concludes it: payouts fixed, nothing withdrawn."""
        self.ok([self.state(5, sol, tok, final=True), pc.register_ix(self.pid, self.chan)])
        self.ok([pc.conclude_ix(self.pid, self.chan)])

    def gone(self, key: Pubkey) -> bool:
        raw = self.svm.get_account(key)
        return raw is None or (raw.lamports == 0 and not bytes(raw.data))


def new_mint(svm: LiteSVM, payer: Keypair, holders: list[Keypair]) -> tuple[Pubkey, Keypair]:
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
            spl.mint_to_ix(mint.pubkey(), ata, authority.pubkey(), 1_000_000),
        ]
    tx = Transaction([payer, mint, authority], Message(ixs, payer.pubkey()), svm.latest_blockhash())
    assert not hasattr(svm.send_transaction(tx), "err")
    return mint.pubkey(), authority


def make_env(token: bool = True) -> Env:
    svm = LiteSVM()
    pid = Pubkey.new_unique()
    svm.add_program(pid, pc.load_program())
    relayer, opener, a, b, mallory = (Keypair() for _ in range(5))
    for k in (relayer, opener, a, b, mallory):
        svm.airdrop(k.pubkey(), 100 * SOL)
    clock = svm.get_clock()
    clock.unix_timestamp = T0
    svm.set_clock(clock)
    mint = new_mint(svm, relayer, [a, b, mallory])[0] if token else None
    channel_rent = svm.minimum_balance_for_rent_exemption(pc.CHANNEL_ACCOUNT_SIZE)
    vault_rent = svm.minimum_balance_for_rent_exemption(spl.TOKEN_ACCOUNT_SIZE)
    mints = [pc.NATIVE_MINT, *([bytes(mint)] if mint else [])]
    ix, cid, chan = pc.open_ix(
        pid,
        opener.pubkey(),
        a.pubkey(),
        b.pubkey(),
        DURATION,
        NONCE,
        channel_rent,
        mints=mints,
        vault_rent_lamports=vault_rent,
    )
    rent = channel_rent + (vault_rent if mint else 0)
    env = Env(svm, pid, relayer, opener, a, b, mallory, mint, cid, chan, ix, rent)
    before = svm.get_balance(opener.pubkey())
    env.ok([ix], [opener])
    assert svm.get_balance(opener.pubkey()) == before - rent
    assert pc.ChannelAccount.decode(bytes(svm.get_account(chan).data)).rent_payer == (
        opener.pubkey()
    )
    env.ok([pc.deposit_ix(pid, a.pubkey(), chan, 0, SOL)], [a])
    env.ok([pc.deposit_ix(pid, b.pubkey(), chan, 1, 2 * SOL)], [b])
    if mint:
        for index, who, amount in ((0, a, 600), (1, b, 400)):
            source = spl.associated_token_address(who.pubkey(), mint)
            env.ok(
                [
                    pc.deposit_ix(
                        pid, who.pubkey(), chan, index, amount, asset=1, mint=mint, source=source
                    )
                ],
                [who],
            )
    return env


@pytest.fixture
def env() -> Env:
    return make_env()


# --- the attacker's cases ----------------------------------------------------------------


def test_close_before_the_channel_is_finished_is_refused(env):
    env.fails([env.close()], "NOT_CONCLUDED")  # open, funded
    env.ok([env.state(3, (SOL, 2 * SOL), (600, 400)), pc.register_ix(env.pid, env.chan)])
    env.fails([env.close()], "NOT_CONCLUDED")  # in dispute
    assert env.svm.get_balance(env.chan) > env.rent  # the deposits are still there


def test_close_with_a_payout_not_withdrawn_is_refused_and_moves_nothing(env):
    env.dispute((SOL // 2, 5 * SOL // 2), (700, 300))
    env.fails([env.close()], "NOT_WITHDRAWN")
    env.ok([env.withdraw(0), env.withdraw(1), env.withdraw(0, asset=1)])
    env.fails([env.close()], "NOT_WITHDRAWN")  # B's 300 tokens are still in the vault
    env.ok([env.withdraw(1, asset=1)])
    env.ok([env.close()])
    assert env.tokens(env.ata(env.b)) == 1_000_000 - 400 + 300


def test_close_to_anyone_but_the_rent_payer_is_refused(env):
    env.ok(env.coop_close(9, (SOL, 2 * SOL), (500, 500)))
    for dest in (env.mallory.pubkey(), env.a.pubkey(), env.chan):
        env.fails([env.close(dest=dest)], "WRONG_RENT_PAYER")


def test_a_stranger_may_close_but_the_rent_goes_to_the_payer_only(env):
    env.ok(env.coop_close(9, (SOL, 2 * SOL), (500, 500)))
    opener0, mallory0 = (
        env.svm.get_balance(env.opener.pubkey()),
        env.svm.get_balance(env.mallory.pubkey()),
    )
    a0, b0 = env.svm.get_balance(env.a.pubkey()), env.svm.get_balance(env.b.pubkey())
    tx = Transaction(
        [env.mallory],
        Message([env.close()], env.mallory.pubkey()),
        env.svm.latest_blockhash(),
    )
    assert not hasattr(env.svm.send_transaction(tx), "err")
    assert env.svm.get_balance(env.opener.pubkey()) == opener0 + env.rent
    assert env.svm.get_balance(env.mallory.pubkey()) == mallory0 - 5000  # its fee, nothing more
    assert (env.svm.get_balance(env.a.pubkey()), env.svm.get_balance(env.b.pubkey())) == (a0, b0)


def test_a_second_close_fails_cleanly(env):
    env.ok(env.coop_close(9, (SOL, 2 * SOL), (500, 500)))
    env.ok([env.close()])
    env.fails([env.close()], "WRONG_CHANNEL_ACCOUNT")
    # nor can the closed channel be registered, concluded or withdrawn from
    env.fails(
        [env.state(10, (SOL, 2 * SOL), (500, 500)), pc.register_ix(env.pid, env.chan)],
        "WRONG_CHANNEL_ACCOUNT",
    )
    env.fails([pc.conclude_ix(env.pid, env.chan)], "WRONG_CHANNEL_ACCOUNT")
    env.fails([env.withdraw(0)], "WRONG_CHANNEL_ACCOUNT")


def test_stray_tokens_in_a_vault_block_the_close_and_nothing_moves(env):
    """Anyone can send tokens to a vault; they belong to no participant, the token program
    will not close a vault that holds them, and the program moves nothing else either."""
    env.ok(env.coop_close(9, (SOL, 2 * SOL), (500, 500)))
    assert env.mint is not None
    env.ok(
        [spl.transfer_ix(env.ata(env.mallory), env.vaults()[0], env.mallory.pubkey(), 1)],
        [env.mallory],
    )
    env.fails([env.close()], TOKEN_ERROR_NON_NATIVE_HAS_BALANCE, program_error=False)


def test_substituted_or_missing_vault_accounts_are_refused(env):
    env.ok(env.coop_close(9, (SOL, 2 * SOL), (500, 500)))
    env.fails([env.close(vaults=[])], "NOT_ENOUGH_ACCOUNTS")
    env.fails([env.close(vaults=[env.ata(env.a)])], "BAD_VAULT")
    metas = list(env.close().accounts)
    metas[2] = AccountMeta(pc.SYSTEM_PROGRAM_ID, False, False)  # not the token program
    env.fails([Instruction(env.pid, bytes([pc.IX_CLOSE_ACCOUNTS]), metas)], "WRONG_TOKEN_PROGRAM")
    env.fails([Instruction(env.pid, bytes([pc.IX_CLOSE_ACCOUNTS, 0]), metas)], "BAD_INSTRUCTION")


def test_reopening_a_closed_channel_id_lets_no_old_state_through(env):
    """OPEN of the same id after the close creates a fresh account with no deposits: an old
    state (final or not) no longer conserves the deposits, and nobody but a participant
    can deposit; the new account's rent is its new payer's."""
    old_final = env.coop_close(9, (SOL, 2 * SOL), (500, 500))
    old_v3 = env.state(3, (SOL, 2 * SOL), (600, 400))
    env.ok(old_final)
    env.ok([env.close()])
    assert env.gone(env.chan) and env.gone(env.vaults()[0])
    mallory_open = pc.open_ix(
        env.pid,
        env.mallory.pubkey(),
        env.a.pubkey(),
        env.b.pubkey(),
        DURATION,
        NONCE,
        env.svm.minimum_balance_for_rent_exemption(pc.CHANNEL_ACCOUNT_SIZE),
        mints=[pc.NATIVE_MINT, bytes(env.mint or b"")],
        vault_rent_lamports=env.svm.minimum_balance_for_rent_exemption(spl.TOKEN_ACCOUNT_SIZE),
    )
    assert mallory_open[1] == env.cid and mallory_open[2] == env.chan
    env.ok([mallory_open[0]], [env.mallory])
    reopened = pc.ChannelAccount.decode(bytes(env.svm.get_account(env.chan).data))
    assert reopened.status == pc.ST_OPEN and reopened.deposits == ((0, 0), (0, 0))
    assert reopened.rent_payer == env.mallory.pubkey()
    env.fails(old_final, "NOT_CONSERVING")
    env.fails([old_v3, pc.register_ix(env.pid, env.chan)], "NOT_CONSERVING")
    env.fails(
        [pc.deposit_ix(env.pid, env.mallory.pubkey(), env.chan, 0, SOL)],
        "NOT_PARTICIPANT",
        [env.mallory],
    )
    env.fails([env.close()], "NOT_CONCLUDED")


# --- the happy paths, to the lamport -------------------------------------------------------


def test_cooperative_close_then_close_gives_the_opener_its_rent_back_exactly():
    env = make_env()
    opener0 = env.svm.get_balance(env.opener.pubkey()) + env.rent  # before OPEN
    a_tok, b_tok = env.tokens(env.ata(env.a)), env.tokens(env.ata(env.b))
    env.ok(env.coop_close(9, (SOL // 2, 5 * SOL // 2), (100, 900)))
    assert env.svm.get_balance(env.chan) == env.svm.minimum_balance_for_rent_exemption(
        pc.CHANNEL_ACCOUNT_SIZE
    )
    env.ok([env.close()])
    assert env.svm.get_balance(env.opener.pubkey()) == opener0
    assert env.gone(env.chan) and env.gone(env.vaults()[0])
    assert (env.tokens(env.ata(env.a)), env.tokens(env.ata(env.b))) == (a_tok + 100, b_tok + 900)


def test_dispute_close_with_a_zero_payout_and_the_closed_event():
    """A payout of zero needs no withdraw; the close logs how much went back."""
    env = make_env(token=False)
    opener0 = env.svm.get_balance(env.opener.pubkey()) + env.rent
    env.dispute((3 * SOL, 0))
    env.ok([env.withdraw(0)])
    res = env.ok([env.close()])
    events = pc.events_from_logs(env.pid, res.logs())
    assert [(e.kind, e.channel_id, e.amount) for e in events] == [(pc.EV_CLOSED, env.cid, env.rent)]
    assert env.svm.get_balance(env.opener.pubkey()) == opener0
    assert env.gone(env.chan)
