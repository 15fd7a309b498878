"""Which backends take N-party channels: EVM and Solana up to 16 members; Bitcoin refuses
anything but two, with the reason (docs/bitcoin.md, "Two members only")."""

from __future__ import annotations

import hashlib

import pytest
from chenilles_bitcoin.plugin import BitcoinBackendFactory
from chenilles_evm.plugin import EvmBackendFactory
from chenilles_solana.plugin import SolanaBackendFactory

from chenilles_hub.core.errors import InvalidParams
from chenilles_hub.core.group import GroupParams
from chenilles_hub.core.model import Asset, Participant
from chenilles_hub.group_members import check_group_on

pytestmark = pytest.mark.groups


def params(chain: str, n: int) -> GroupParams:
    members = tuple(Participant(f"key-{i}", hashlib.sha256(b"%d" % i).digest()) for i in range(n))
    return GroupParams(chain, members, (Asset(chain, "native"),), 3600, b"\x01" * 32)


@pytest.mark.parametrize("n", [3, 5, 8])
def test_bitcoin_refuses_more_than_two_and_says_why(n: int) -> None:
    info = BitcoinBackendFactory.info
    with pytest.raises(InvalidParams, match=r"two-party.*penalty.*new opcodes"):
        check_group_on(info, params("bip122:regtest", n))
    check_group_on(info, params("bip122:regtest", 2))


@pytest.mark.parametrize("factory", [EvmBackendFactory, SolanaBackendFactory])
def test_evm_and_solana_take_up_to_sixteen(factory) -> None:  # type: ignore[no-untyped-def]
    chain = "eip155:1" if factory is EvmBackendFactory else "solana:localnet"
    for n in (2, 5, 8, 16):
        check_group_on(factory.info, params(chain, n))
    with pytest.raises(InvalidParams, match="2 to 16 members, not 17"):
        check_group_on(factory.info, params(chain, 17))
