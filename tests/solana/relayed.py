"""Sending instructions to the program on LiteSVM the way the tests of its instructions do:
a relayer that is never a participant pays every fee, so a participant's lamports move
only by what the program does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.transaction import Transaction


class Relayed:
    """A mixin for a test environment (a dataclass) holding ``svm`` and ``relayer``."""

    svm: LiteSVM
    relayer: Keypair

    def send(self, ixs: Sequence[Instruction], signers: Sequence[Keypair] = ()) -> Any:
        tx = Transaction(
            [self.relayer, *signers],
            Message(list(ixs), self.relayer.pubkey()),
            self.svm.latest_blockhash(),
        )
        res = self.svm.send_transaction(tx)
        self.svm.expire_blockhash()
        return res

    def ok(self, ixs: Sequence[Instruction], signers: Sequence[Keypair] = ()) -> Any:
        res = self.send(ixs, signers)
        assert not hasattr(res, "err"), f"transaction failed: {res}"
        return res
