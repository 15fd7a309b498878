"""Fixtures for the EVM adjudicator tests: every test runs on both ledgers,
eth-tester (py-evm in process) and anvil (node_modules/.bin/anvil)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from chenilles_evm.adjudicator import AdjudicatorClient, Erc20, Params, State, TxResult
from chenilles_evm.eip712 import ETH
from chenilles_evm.ledgers import Ledger, anvil_binary, make_ledger
from eth_utils.address import to_checksum_address

LEDGER_KINDS = ("ethtester", "anvil")

#: gas used per operation and ledger, filled by the tests, printed at the end
GAS: dict[str, dict[str, int]] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "evm: runs on a real EVM (eth-tester and anvil)")


def _anvil_available() -> bool:
    try:
        anvil_binary()
        return True
    except FileNotFoundError:
        return False


@pytest.fixture(scope="session", params=LEDGER_KINDS)
def ledger(request: pytest.FixtureRequest) -> Iterator[Ledger]:
    kind = request.param
    if kind == "anvil" and not _anvil_available():
        if os.environ.get("CHENILLES_REQUIRE_ANVIL"):
            pytest.fail("anvil not installed (run `npm ci`)")
        pytest.skip("anvil not installed (run `npm ci`)")
    led = make_ledger(kind)
    yield led
    led.stop()


@dataclass
class Env:
    """One fresh adjudicator, one test token, and one funded-ready channel."""

    ledger: Ledger
    adj: AdjudicatorClient
    token: Erc20
    params: Params

    @property
    def w3(self):
        return self.ledger.w3

    @property
    def a(self):
        return self.ledger.accounts[0]

    @property
    def b(self):
        return self.ledger.accounts[1]

    @property
    def watcher(self):
        return self.ledger.accounts[2]

    @property
    def cid(self) -> bytes:
        return self.adj.channel_id(self.params)

    def private_keys(self) -> tuple[bytes, bytes]:
        return (self.a.key, self.b.key)

    def sign_both(self, state: State, adj: AdjudicatorClient | None = None) -> list[bytes]:
        adj = adj or self.adj
        return [adj.sign(state, self.a.key), adj.sign(state, self.b.key)]

    def new_params(self, challenge: int = 100, app: str = ETH) -> Params:
        return Params((self.a.address, self.b.address), challenge, secrets.token_bytes(32), app)

    def fund_eth(self, amounts: tuple[int, int], params: Params | None = None) -> None:
        p = params or self.params
        for i, (acct, amt) in enumerate(zip((self.a, self.b), amounts, strict=True)):
            if amt:
                self.adj.deposit(p, i, ETH, amt, acct.address)

    def fund_token(
        self, amounts: tuple[int, int], params: Params | None = None, token: Erc20 | None = None
    ) -> None:
        p = params or self.params
        tok = token or self.token
        for i, (acct, amt) in enumerate(zip((self.a, self.b), amounts, strict=True)):
            if amt:
                tok.mint(acct.address, amt, acct.address)
                tok.approve(self.adj.address, amt, acct.address)
                self.adj.deposit(p, i, tok.address, amt, acct.address)

    def state(
        self,
        version: int,
        balances: tuple[tuple[int, int], ...],
        assets: tuple[str, ...] = (ETH,),
        htlcs: tuple = (),
        is_final: bool = False,
        app_data: bytes = b"",
        params: Params | None = None,
    ) -> State:
        cid = self.adj.channel_id(params or self.params)
        return State(cid, version, assets, balances, tuple(htlcs), app_data, is_final)

    def wallets(self, asset: str = ETH) -> tuple[int, int]:
        """The participants' own on-chain balances of ``asset``."""
        if asset == ETH:
            return (
                self.w3.eth.get_balance(self.a.address),
                self.w3.eth.get_balance(self.b.address),
            )
        token = Erc20(self.w3, asset)
        return (token.balance_of(self.a.address), token.balance_of(self.b.address))

    def held(self, asset: str = ETH) -> int:
        """What the adjudicator contract owns of ``asset`` (all channels)."""
        if asset == ETH:
            return int(self.w3.eth.get_balance(self.adj.address))
        return Erc20(self.w3, asset).balance_of(self.adj.address)

    def fee(self, result: TxResult) -> int:
        """What the sender of ``result`` paid for it, in wei."""
        receipt = self.w3.eth.get_transaction_receipt(result.tx_hash)
        return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])

    def expect_paid(
        self,
        result: TxResult,
        paid: dict[str, tuple[int, int]],
        params: Params | None = None,
        credited: dict[str, tuple[int, int]] | None = None,
    ) -> None:
        """``result`` (a conclusion) sent each participant exactly ``paid[asset]``: one
        ``Withdrawn`` to the participant's own address per nonzero payout, and credited
        exactly ``credited[asset]`` (nothing by default), which is then all that is left
        to withdraw."""
        p = params or self.params
        cid = self.adj.channel_id(p)
        got: dict[tuple[str, int], int] = {}
        got_credit: dict[tuple[str, int], int] = {}
        for e in result.events:
            if e.name not in ("Withdrawn", "PayoutCredited"):
                continue
            a = e.args
            assert a["channelId"] == cid
            key = (to_checksum_address(a["asset"]), int(a["participant"]))
            if e.name == "Withdrawn":
                assert a["receiver"] == to_checksum_address(p.participants[key[1]])
                assert key not in got, "paid twice"
                got[key] = int(a["amount"])
            else:
                assert key not in got_credit, "credited twice"
                got_credit[key] = int(a["amount"])
        credited = credited or {}

        def nonzero(table: dict[str, tuple[int, int]]) -> dict[tuple[str, int], int]:
            return {
                (to_checksum_address(x), i): v
                for x, vs in table.items()
                for i, v in enumerate(vs)
                if v
            }

        assert got == nonzero(paid)
        assert got_credit == nonzero(credited)
        for asset in {*paid, *credited}:
            for i in (0, 1):
                owed = credited.get(asset, (0, 0))[i]
                assert self.adj.payout(cid, asset, i) == (owed, owed == 0)

    def snapshot(self, params: Params | None = None, assets: tuple[str, ...] = (ETH,)) -> tuple:
        cid = self.adj.channel_id(params or self.params)
        return (
            self.adj.dispute(cid),
            tuple(self.adj.holding(cid, x) for x in assets),
            tuple(self.adj.payout(cid, x, i) for x in assets for i in (0, 1)),
        )


def make_env(ledger: Ledger) -> Env:
    deployer = ledger.accounts[3].address
    adj = AdjudicatorClient.deploy(ledger.w3, deployer)
    token = Erc20.deploy_test_token(ledger.w3, deployer)
    params = Params(
        (ledger.accounts[0].address, ledger.accounts[1].address), 100, secrets.token_bytes(32)
    )
    return Env(ledger, adj, token, params)


@pytest.fixture
def env(ledger: Ledger) -> Env:
    return make_env(ledger)


@pytest.fixture
def record_gas():
    """``record_gas(ledger, op, gas)``: add a row to the gas table printed at the end."""

    def record(ledger: Ledger, op: str, gas: int) -> None:
        GAS.setdefault(op, {})[ledger.kind] = gas

    return record


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not GAS:
        return
    tr = terminalreporter
    tr.section("EVM adjudicator gas (gasUsed per transaction)")
    tr.write_line(f"{'operation':<42}{'ethtester':>12}{'anvil':>12}")
    for op, by in GAS.items():
        tr.write_line(f"{op:<42}{by.get('ethtester', '-'):>12}{by.get('anvil', '-'):>12}")
