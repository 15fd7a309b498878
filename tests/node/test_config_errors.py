"""Config mistakes an operator makes, each refused with one line naming the cause (and the
closest valid key for a typo), never a traceback and never silently ignored. Pure (no
node, no chain but the refusals of ``node check`` and ``node start`` before any chain is
reached): about a second."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from chenilles_hub import plugins
from chenilles_hub.cli import main
from chenilles_hub.node.config import ConfigError, load_config
from chenilles_hub.node.runtime.bootstrap import build_chains, check_chain_keys

pytestmark = pytest.mark.node

GOOD = """
[node]
name = "hub"
listen = "127.0.0.1:9735"

[api]
listen = "127.0.0.1:9736"

[log]
level = "info"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(text)
    return path


def _refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_good_config_loads(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, GOOD))
    assert (config.listen_port, config.api_port, config.log_level) == (9735, 9736, "INFO")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[node]\nlistn = "127.0.0.1:1"\n', "[node]: unknown key 'listn' (did you mean 'listen'?)"),
        ('[api]\ntoken_fil = "t"\n', "did you mean 'token_file'?"),
        ('[nodes]\nname = "x"\n', "unknown key 'nodes' (did you mean 'node'?)"),
        ('[log]\nlevl = "INFO"\n', "did you mean 'level'?"),
        ('[store]\nknd = "sqlite"\n', "did you mean 'kind'?"),
        ('[[peers]]\nnode_id = "00"\naddres = "x:1"\n', "did you mean 'address'?"),
        ("[policy.open]\nacept = true\n", "did you mean 'accept'?"),
        ('[[policy.fees]]\nasset = "native@eip155:1"\nbse = 1\n', "did you mean 'base'?"),
        ("[node]\nzzzz = 1\n", "known: accept_unknown_peers, "),
    ],
)
def test_an_unknown_key_is_refused_with_the_closest_one(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert expected in _refused(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[node]\nlisten = 9735\n", "node.listen: expected a string, got int 9735"),
        ("[node]\ntick_interval = true\n", "node.tick_interval: expected a number"),
        ('[node]\naccept_unknown_peers = "yes"\n', "expected true or false"),
        ('[log]\nlevel = "VERBOSE"\n', "log.level must be one of DEBUG, INFO"),
        ('[log]\nformat = "xml"\n', "log.format must be text or json"),
        ("[[policy.fees]]\nbase = 1\n", "policy.fees[0]: asset is required"),
        ('[[policy.fees]]\nasset = "eth"\n', "an asset written token@chain"),
        ('[[policy.fees]]\nasset = "native@eip155:1"\nppm = -1\n', "policy.fees[0].ppm"),
        (
            '[[policy.rates]]\nasset_in = "a@x:1"\nasset_out = "b@y:2"\nnumerator = 3\n',
            "policy.rates[0]: denominator is required",
        ),
        ("[chains.evm]\nurl = 8545\n", "chains.evm.url: expected a string"),
        ('[chains.evm]\nurl = "http://x"\n', "needs account_key"),
    ],
)
def test_wrong_values_are_refused_naming_the_key(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in _refused(tmp_path, text)


def test_a_backend_key_typo_is_refused_before_the_chain_is_reached(tmp_path: Path) -> None:
    evm = plugins.backend("evm")
    typo = r"unknown key 'adjudicatr' \(did you mean 'adjudicator'\?\)"
    with pytest.raises(ConfigError, match=typo):
        check_chain_keys(evm, "evm", False, {"adjudicatr": "0x00", "from_block": 0})
    check_chain_keys(evm, "evm", False, {"adjudicator": "0x00", "tokens": [], "from_block": 0})
    with pytest.raises(ConfigError, match="did you mean 'program_id'"):
        check_chain_keys(plugins.backend("solana"), "sol", False, {"programid": "x"})


def test_solana_without_a_program_id_is_one_line(tmp_path: Path) -> None:
    config = load_config(
        _write(
            tmp_path,
            GOOD + '\n[chains.solana]\nurl = "http://127.0.0.1:9"\naccount_key = "00"\n',
        )
    )
    with pytest.raises(ConfigError, match=r"\[chains.solana\].*program"):
        build_chains(config)


def test_a_url_chain_without_an_adjudicator_is_refused_not_deployed(tmp_path: Path) -> None:
    config = load_config(
        _write(
            tmp_path,
            GOOD
            + '\n[chains.evm]\nurl = "http://127.0.0.1:9"\naccount_key = "0x'
            + "11" * 32
            + '"\n',
        )
    )
    with pytest.raises(ConfigError, match=r"\[chains.evm\]: .*no adjudicator pinned"):
        build_chains(config)


def test_node_start_and_check_print_one_error_line(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("listen =", "listn =", 1))
    runner = CliRunner()
    for args in (["node", "start"], ["node", "check"]):
        result = runner.invoke(main, [*args, "--config", str(path)])
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert lines == ["Error: [node]: unknown key 'listn' (did you mean 'listen'?)"]
    result = runner.invoke(main, ["node", "check", "--config", str(path), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["code"] == "config"
