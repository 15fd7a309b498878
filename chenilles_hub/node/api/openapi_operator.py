"""OpenAPI paths of the operator's run-time tools: wallet, peers, policy, history
(``wallet.py``, ``node_routes.remove_peer``, ``policy.py``, ``history.py``)."""

from __future__ import annotations

from typing import Any

_AMOUNT = {"type": "integer", "minimum": 0, "description": "base units (wei, sat, lamport)"}
_ASSET = {"type": "string", "example": "native@eip155:31337", "description": "token@chain"}
_HEX32 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}


def _op(
    summary: str,
    body: dict[str, Any] | None = None,
    ok: str = "200",
    errors: tuple[str, ...] = ("401",),
    path: tuple[str, ...] = (),
    query: tuple[tuple[str, dict[str, Any], str], ...] = (),
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            ok: {"description": "success", "content": {"application/json": {}}},
            **{code: {"$ref": f"#/components/responses/E{code}"} for code in errors},
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    params = [{"name": p, "in": "path", "required": True, "schema": _HEX32} for p in path]
    params += [
        {"name": name, "in": "query", "required": False, "schema": schema, "description": text}
        for name, schema, text in query
    ]
    if params:
        op["parameters"] = params
    return op


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    return schema


_RANGE = (
    ("since", {"type": "integer", "minimum": 0}, "from (unix seconds, inclusive)"),
    ("until", {"type": "integer", "minimum": 0}, "until (unix seconds, inclusive)"),
)


def operator_paths(bad: tuple[str, ...]) -> dict[str, Any]:
    return {
        "/v1/peers/{node_id}/disconnect": {
            "post": _op(
                "close the link to a peer and stop dialling it (removed from the persisted "
                "peers; a peer of the config file is dialled again at the next start)",
                errors=("400", "401", "404", "503"),
                path=("node_id",),
            )
        },
        "/v1/wallet": {
            "get": _op("the node's on-chain accounts: address, balance and decimals per asset")
        },
        "/v1/wallet/coins": {
            "get": _op(
                "the unspent outputs of a UTXO chain's wallet (Bitcoin)",
                errors=("400", "401", "404", "503"),
                query=(("chain", {"type": "string"}, "the chain (CAIP-2)"),),
            )
        },
        "/v1/wallet/send": {
            "post": _op(
                "send base units to an address from the node's account (422 "
                "insufficient_funds or send_refused: nothing was sent)",
                _obj(
                    ["asset", "to", "amount"], asset=_ASSET, to={"type": "string"}, amount=_AMOUNT
                ),
                ok="201",
                errors=(*bad, "404", "422"),
            )
        },
        "/v1/policy": {"get": _op("the fees and conversion rates in force")},
        "/v1/policy/fees": {
            "post": _op(
                "set the fee for sending an asset: base (base units) + ppm (millionths)",
                _obj(["asset"], asset=_ASSET, base=_AMOUNT, ppm={"type": "integer", "minimum": 0}),
                errors=bad,
            )
        },
        "/v1/policy/rates": {
            "post": _op(
                "set or remove the rate converting asset_in into asset_out: rate in whole "
                "units (a decimal string), or numerator/denominator in base units",
                _obj(
                    ["asset_in", "asset_out"],
                    asset_in=_ASSET,
                    asset_out=_ASSET,
                    rate={"type": "string", "example": "0.05"},
                    numerator={"type": "integer", "minimum": 1},
                    denominator={"type": "integer", "minimum": 1},
                    remove={"type": "boolean"},
                ),
                errors=bad,
            )
        },
        "/v1/forwards": {
            "get": _op(
                "forwards that settled, newest first, with the fees earned per asset",
                errors=("400", "401", "503"),
                query=_RANGE,
            )
        },
        "/v1/invoices/{payment_hash}": {
            "get": _op("one invoice", errors=("400", "401", "404"), path=("payment_hash",))
        },
        "/v1/invoices/{payment_hash}/cancel": {
            "post": _op(
                "withdraw an unpaid invoice: an HTLC arriving for it is failed back",
                errors=("400", "401", "404", "409"),
                path=("payment_hash",),
            )
        },
    }
