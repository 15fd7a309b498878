"""API handlers for the node's on-chain wallet: balances per chain and asset, Bitcoin's
coins, and sending to an address (the backends' optional ``Wallet`` role).

``send`` refuses an amount above what the account holds before anything is built, so a
refusal never leaves a transaction behind; the ledger's own refusal (the fee on top does
not fit, a bad address) comes back as ``send_refused`` with its reason."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from chenilles_hub.backend import CoinWallet, LedgerError, TxReceipt, Wallet

from ..hub.node import Node
from .inputs import (
    asset_field,
    json_response,
    node_of,
    positive_field,
    read_body,
    service,
    text_field,
)
from .operations import ApiError


def _wallet(node: Node, chain: str) -> Any:
    backend = node.backends.get(chain)
    if backend is None:
        raise ApiError(404, "unknown_chain", f"this node has no chain {chain}")
    if not isinstance(backend, Wallet):
        raise ApiError(400, "not_supported", f"the {chain} backend has no wallet")
    return backend


def balances(node: Node) -> list[dict[str, Any]]:
    rows = []
    for chain, backend in sorted(node.backends.items()):
        account = node.accounts[chain]
        wallet = backend if isinstance(backend, Wallet) else None
        assets = []
        for asset in backend.assets():
            try:
                balance: int | None = backend.balance(account, asset)
            except Exception:  # an unreachable ledger: report what we can
                balance = None
            decimals = None
            if wallet is not None:
                try:
                    decimals = wallet.decimals(asset)
                except Exception:
                    decimals = None
            assets.append({"asset": str(asset), "balance": balance, "decimals": decimals})
        address = wallet.address(account) if wallet is not None else account.chain_key
        rows.append({"chain": chain, "address": address, "assets": assets})
    return rows


def receipt_view(receipt: TxReceipt) -> dict[str, Any]:
    return {
        "operation": receipt.operation,
        "txid": receipt.txid,
        "fee": receipt.fee,
        "fee_asset": str(receipt.fee_asset),
        "block": receipt.block,
    }


async def wallet(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    return json_response(await server.in_worker(balances, node))


async def coins(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    chain = request.query.get("chain", "")
    backend = node.backends.get(chain)
    if backend is None:
        raise ApiError(404, "unknown_chain", f"this node has no chain {chain!r}")
    if not isinstance(backend, CoinWallet):
        raise ApiError(400, "not_supported", f"{chain} keeps no coins (not a UTXO chain)")
    return json_response(await server.in_worker(backend.coins, node.accounts[chain]))


async def send(request: web.Request) -> web.Response:
    """Pay ``amount`` base units of ``asset`` from the node's account to ``to``."""
    server = service(request)
    node = node_of(request)
    data = await read_body(request)
    asset = asset_field(data, "asset")
    assert asset is not None
    to = text_field(data, "to", limit=200)
    amount = positive_field(data, "amount")
    backend = _wallet(node, asset.chain)
    if asset not in backend.assets():
        raise ApiError(400, "unknown_asset", f"{asset.chain} does not hold {asset}")
    account = node.accounts[asset.chain]

    def pay() -> dict[str, Any]:
        held = backend.balance(account, asset)
        if amount > held:
            raise ApiError(
                422,
                "insufficient_funds",
                f"the account holds {held} {asset} (base units), less than {amount}; "
                "nothing was sent",
            )
        try:
            receipt = backend.send(account, asset, to, amount)
        except LedgerError as exc:
            raise ApiError(422, "send_refused", f"{exc}; nothing was sent") from None
        return {**receipt_view(receipt), "amount": amount, "asset": str(asset), "to": to}

    return json_response(await server.in_worker(pay), 201)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v1/wallet", wallet)
    router.add_get("/v1/wallet/coins", coins)
    router.add_post("/v1/wallet/send", send)
