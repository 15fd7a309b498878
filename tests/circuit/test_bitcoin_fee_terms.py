"""Two nodes whose Bitcoin fee options differ open a channel on the opener's terms, or are
refused with the option to change, never with a bare "invalid signature".

Each side used to build every transaction both sign with its own options: a hub whose
operator set ``feerate_per_kw`` to follow the market could open a channel with no peer
configured otherwise (the first state did not check on the other side). The opener, who
funds the channel and pays its commitment fees, now proposes the policy in its participant
key (BOLT 2's ``open_channel`` carries its feerate and dust limit the same way), and the
acceptor consents within its own options before it answers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from chenilles_bitcoin.backend import BitcoinBackend, embedded_backend
from chenilles_bitcoin.channel_keys import parse_chain_key
from chenilles_bitcoin.policy import ChannelPolicy, with_policy

from chenilles_hub.core import Asset, ChannelParams, Participant
from chenilles_hub.identity import NodeIdentity
from chenilles_hub.node.hub.node import Node
from chenilles_hub.node.net import wire

from .world import World

pytestmark = [pytest.mark.circuit, pytest.mark.adversarial, pytest.mark.bitcoin]

CHALLENGE = 6 * 3600  # 36 blocks of to_self_delay
DEPOSIT = 1_000_000
RAISED = ChannelPolicy(feerate_per_kw=2_500)


class Pair:
    """Bob's node on the backend the world polls (the default options, 1,000 sat/kw) and
    Alice's on another backend over the same chain whose operator raised the feerate."""

    def __init__(self) -> None:
        self.backend = embedded_backend()
        self.chain = self.backend.chain
        self.btc = Asset(self.chain, "native")
        self.world = World({self.chain: self.backend}, self.backend)
        self.bob = self.world.node("bob", [self.chain])
        self.raised = BitcoinBackend(
            self.backend.ledger, chain=self.chain, policy=RAISED, auto_mine=True, height_clock=True
        )
        self.raised._anchor = self.backend._anchor  # one chain, one clock
        self.alice = Node(
            identity=NodeIdentity(),
            backends={self.chain: self.raised},
            accounts={self.chain: self.raised.create_account(fund=True)},
            clock=self.world.now,
            name="alice",
            open_policy=self.world.consenting([self.chain]),
        )
        self.world.network.add(self.alice)

    def received(self, node: Node, since: int) -> int:
        return self.backend.balance(node.accounts[self.chain], self.btc) - since


@pytest.fixture(name="pair")
def _pair() -> Iterator[Pair]:
    pair = Pair()
    try:
        yield pair
    finally:
        close = getattr(pair.backend.ledger, "close", None)
        if close is not None:
            close()


def test_a_channel_opened_by_a_node_with_a_higher_feerate_works_on_its_terms(pair: Pair) -> None:
    """Alice (2,500 sat/kw) opens to Bob (1,000): both build at 2,500, a payment goes
    through, and Bob's forced close pays him his balance less his own sweep's fee."""
    channel_id = pair.world.open(
        pair.alice, pair.bob, pair.chain, {pair.btc: (DEPOSIT, 0)}, CHALLENGE
    )
    for node in (pair.alice, pair.bob):
        view = (
            node.backends[pair.chain]
            .context(  # type: ignore[attr-defined]
                node.channels[channel_id].params,
                node.channels[channel_id].me,
                node.accounts[pair.chain],
            )
            .view
        )
        assert view.policy == RAISED
    pair.alice.pay_direct(channel_id, pair.btc, 300_000)
    pair.world.network.run()
    bob = pair.bob.channels[channel_id]
    assert bob.machine.latest is not None
    assert bob.machine.latest.state.free(pair.btc) == (700_000, 300_000)
    assert bob.machine.latest == pair.alice.channels[channel_id].machine.latest
    before = pair.backend.balance(pair.bob.accounts[pair.chain], pair.btc)
    pair.bob.force_close(channel_id)
    for _ in range(50):  # the to_self_delay (36 blocks), then his sweep
        pair.world.advance(600)
    journal = "\n".join(pair.bob.journal[-10:])
    assert bob.status == "closed", journal
    fees = sum(r.fee for r in bob.receipts if not r.fee_from_channel)
    assert pair.received(pair.bob, before) == 300_000 - fees, journal


def test_a_node_whose_feerate_is_below_the_acceptors_is_refused_with_what_to_change(
    pair: Pair,
) -> None:
    """Bob (1,000 sat/kw) asks Alice (2,500): she refuses before anything is signed or
    reserved, and Bob's operator reads why in the open's result."""
    wallet = pair.backend.balance(pair.bob.accounts[pair.chain], pair.btc)
    temp_id = pair.bob.open_channel(
        pair.alice.node_id, pair.chain, {pair.btc: (DEPOSIT, 0)}, CHALLENGE
    )
    pair.world.network.run()
    result = pair.bob.open_results[temp_id]
    assert isinstance(result, str)
    assert "feerate 1000 sat/kw is below this node's 2500 sat/kw" in result
    assert "option feerate_per_kw" in result
    assert not pair.bob.channels and not pair.alice.channels
    assert not pair.bob.opening.pending_opens and not pair.alice.opening.pending_opens
    assert pair.backend.balance(pair.bob.accounts[pair.chain], pair.btc) == wallet


# --- what a stranger on the peer port may try --------------------------------------------


class Opener:
    """A peer that speaks the wire format and nothing else, with a real Bitcoin key (an
    account of its own on the chain) so that what it sends parses."""

    def __init__(self, pair: Pair, victim: Node) -> None:
        self.pair, self.victim = pair, victim
        self.node_id = NodeIdentity().node_id
        self.account = pair.backend.create_account(fund=False)

    def key(self, salt: bytes, policy: ChannelPolicy) -> str:
        keys = self.pair.backend.participant_key(self.account, salt).rsplit(":", 4)[0]
        return with_policy(keys, policy)

    def send(self, message: Any) -> list[Any]:
        before = len(self.victim.outbox)
        self.victim.receive(self.node_id, wire.encode(message))
        answers = [
            wire.decode(data) for peer, data in self.victim.outbox[before:] if peer == self.node_id
        ]
        del self.victim.outbox[before:]
        return answers

    def request(self, salt: bytes, key: str) -> tuple[bytes, list[Any]]:
        temp_id = os.urandom(32)
        message = wire.OpenRequest(
            temp_id, self.pair.chain, (self.pair.btc,), ((DEPOSIT, 0),), CHALLENGE, salt, key
        )
        return temp_id, self.send(message)


def test_a_peer_that_sends_one_salt_twice_never_gets_our_keys_twice(pair: Pair) -> None:
    """Found by review: the acceptor derived its channel keys from the salt the opener
    sent. A peer that opened twice with one salt got the same funding key and the same
    per-commitment secrets from us in both channels, so the revocations we gave it in one
    were those of our commitments in the other: a forced close of ours there was its to
    take. The acceptor draws its own salt."""
    opener = Opener(pair, pair.bob)
    salt = os.urandom(32)
    accepted = []
    for _ in range(2):
        _temp_id, answers = opener.request(salt, opener.key(salt, ChannelPolicy()))
        (accept,) = answers
        assert isinstance(accept, wire.OpenAccept)
        accepted.append(accept.acceptor_key)
    funding = [parse_chain_key(key).funding_pubkey for key in accepted]
    points = [parse_chain_key(key).first_point for key in accepted]
    assert funding[0] != funding[1] and points[0] != points[1]


def test_an_opener_that_names_other_terms_in_its_params_than_in_its_request_is_refused(
    pair: Pair,
) -> None:
    """Alice (2,500 sat/kw) consents to a request carrying 2,500; the params that follow
    carry 1,000 in the opener's key. She refuses them: no channel is created, nothing is
    signed."""
    opener = Opener(pair, pair.alice)
    salt = os.urandom(32)
    asked = opener.key(salt, RAISED)
    temp_id, answers = opener.request(salt, asked)
    (accept,) = answers
    assert isinstance(accept, wire.OpenAccept)
    swapped = opener.key(salt, ChannelPolicy())
    params = ChannelParams(
        chain=pair.chain,
        participants=(
            Participant(swapped, opener.node_id),
            Participant(accept.acceptor_key, pair.alice.node_id),
        ),
        assets=(pair.btc,),
        challenge_duration=CHALLENGE,
        nonce=os.urandom(32),
    )
    answers = opener.send(wire.OpenChannel(temp_id, params))
    assert not pair.alice.channels
    assert [a.reason for a in answers if isinstance(a, wire.OpenRefused)] == [
        "invalid_params: the channel params differ from what was requested"
    ]
