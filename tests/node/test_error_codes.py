"""Every error code is catalogued, documented (OpenAPI, docs/operating-a-hub.md) and
answered in one shape: ``{"error": {"code", "message", "hint"}}``; CLI errors are one JSON
object under ``--json``. Pure and fast (no node): well under a second."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from chenilles_hub.cli import main
from chenilles_hub.cli.errors import CLI_ERRORS
from chenilles_hub.node.api.errors import catalog, error_body
from chenilles_hub.node.api.openapi import openapi_document

pytestmark = pytest.mark.node
ROOT = Path(__file__).resolve().parents[2]


def _codes_raised_in_source() -> set[str]:
    """The literal codes of every ``ApiError(status, "code", ...)`` and
    ``error_response(status, "code", ...)`` in the node and the apps."""
    found: set[str] = set()
    for path in [
        *ROOT.joinpath("chenilles_hub").rglob("*.py"),
        *ROOT.joinpath("apps").rglob("*.py"),
    ]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            code = node.args[1]
            if name in ("ApiError", "error_response") and isinstance(code, ast.Constant):
                found.add(code.value)
    return found


def test_every_code_the_api_answers_is_in_the_catalog() -> None:
    raised = _codes_raised_in_source()
    assert len(raised) > 25
    assert raised <= set(catalog()), raised - set(catalog())


def test_the_catalog_holds_the_core_refusals_with_their_meaning() -> None:
    codes = catalog()
    assert codes["insufficient_balance"].status == 422
    assert "wallet" in codes["insufficient_balance"].hint
    assert codes["no_route"].status == 422 and codes["timelock_delta"].meaning
    assert codes["unknown_channel"].status == 404


def test_every_code_is_in_the_docs_error_table() -> None:
    text = (ROOT / "docs" / "operating-a-hub.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", text, re.MULTILINE))
    missing = (set(catalog()) | set(CLI_ERRORS)) - documented
    assert not missing, f"add to the error-codes table of docs/operating-a-hub.md: {missing}"


def test_openapi_enumerates_every_code_and_names_them_per_status() -> None:
    document = openapi_document()
    error = document["components"]["schemas"]["Error"]["properties"]["error"]
    assert set(error["properties"]["code"]["enum"]) == set(catalog())
    assert error["required"] == ["code", "message", "hint"]
    assert "unknown_channel" in document["components"]["responses"]["E404"]["description"]


def test_an_error_body_carries_the_catalogued_hint() -> None:
    body = error_body("peer_not_connected", "peer 4d… is not connected")
    assert body == {
        "error": {
            "code": "peer_not_connected",
            "message": "peer 4d… is not connected",
            "hint": "connect it first (chenilles peers)",
        }
    }


def test_cli_errors_are_one_json_object_under_json(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = tmp_path / "nowhere.toml"
    result = runner.invoke(main, ["channel", "list", "--config", str(missing), "--json"])
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["error"]["code"] == "config" and "nowhere.toml" in body["error"]["message"]
    # a usage error too (exit 2), and without --json the familiar single line
    result = runner.invoke(main, ["channel", "list", "--json", "--bogus"])
    assert result.exit_code == 2 and json.loads(result.stdout)["error"]["code"] == "usage"
    result = runner.invoke(main, ["channel", "list", "--config", str(missing)])
    assert result.exit_code == 1 and result.stderr.startswith("Error: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_unreachable_node_is_a_json_error(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("x" * 32)
    result = CliRunner().invoke(
        main,
        ["node", "info", "--api-url", "http://127.0.0.1:9", "--token-file", str(token), "--json"],
    )
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["code"] == "unreachable"
