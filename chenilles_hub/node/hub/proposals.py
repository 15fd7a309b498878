"""Turning queued updates into proposals: one proposal in flight per channel, as many
updates per proposal as the peer decodes, refused updates failed one by one.

Updates (transfers, HTLC adds, settles, fails, a close) are queued on their channel by the
rest of the node; ``flush`` proposes them wherever the channel's machine is idle. Under load
many updates share one signed state, which is where the node's throughput comes from.

A proposal the peer refused is not failed at once: the peer holds our signature on it, so
its updates are failed only once a later version is irrevocable (the machine then reports
``ProposalRejected``). Until then ``flush`` proposes nothing but empty updates on that
channel ("burying" the refused version, two round trips), so that no HTLC of ours is
failed upstream, nor a payment reported failed, while a copy could still be enforced.
"""

from __future__ import annotations

from collections.abc import Callable

from ...core import (
    AddHtlc,
    ChannelError,
    Effect,
    FailHtlc,
    ProposalRejected,
    ProposalWithdrawn,
    SettleHtlc,
    Update,
)
from ...core.errors import ProposalConflict, ProposalTooLarge, TooManyHtlcs
from ...core.messages import MAX_UPDATES_PER_PROPOSAL
from .context import NodeContext
from .htlc_queue import take_batch
from .records import Channel

RunEffects = Callable[[Channel, list[Effect]], None]
#: Refused proposals of one version after which we stop burying (the peer refuses even
#: an empty update): what it refused stays unreported until the version moves on.
MAX_BURIAL_REFUSALS = 3
#: Called for an update of ours that could not be proposed or that the peer refused.
UpdateFailed = Callable[[Channel, Update, str], None]
#: Times a settle or fail the peer refused is proposed again while its HTLC is held: a
#: refusal may be for a passing reason (the peer's cap on small HTLCs, refused with other
#: updates; its channel back from a reorg); past this it is the peer's protocol breach,
#: shown on the channel, and the watcher claims or refunds the HTLC on-chain.
MAX_RESOLVE_RETRIES = 3


class Proposals:
    def __init__(self, ctx: NodeContext, run: RunEffects, failed: UpdateFailed) -> None:
        self.ctx = ctx
        self.run = run
        self.failed = failed
        #: Channels whose next proposal carries only the settles and fails at the head of
        #: their queue (how many), proposed again after a refusal: with other updates a
        #: peer's limit may refuse them again, round after round under load. Not
        #: persisted: after a restart they go with the rest, and a refusal separates them
        #: again.
        self._alone: dict[bytes, int] = {}
        #: Per channel, the HTLCs whose settle or fail was proposed again, and how often.
        self._retries: dict[bytes, dict[int, int]] = {}

    def queue(self, channel: Channel, update: Update) -> None:
        channel.queue = [*channel.queue, update]

    def flush(self, limit: int | None = None) -> bool:
        """Propose each channel's queued updates, as many as one proposal carries, where the
        machine is idle; fail those queued on a channel that went on-chain or closed.

        With ``limit``, stop after that many proposals and return True: the rest is for
        the next call. A driver that writes (and sends) per job bounds a job's signing
        this way, so that the first proposals of a burst over many channels are durable
        and on their way while the next ones are signed, rather than all waiting for the
        last signature and one big write."""
        now = self.ctx.clock()
        queued, parked = self.ctx.queued, self.ctx.parked
        proposed = 0
        progress = True
        while progress:  # a refused update may queue a fail on a channel already visited
            progress = False
            for channel_id in list(queued):
                channel = self.ctx.channels[channel_id]
                burying = bool(channel.machine.withdrawn)
                if not channel.queue and not burying:
                    del queued[channel_id]
                    parked.pop(channel_id, None)
                    continue
                if channel.status in ("disputed", "closed"):
                    # What we refused stays unreported: the chain decides now.
                    stranded, channel.queue = channel.queue, []
                    self._alone.pop(channel_id, None)
                    self._retries.pop(channel_id, None)
                    for update in stranded:
                        self.failed(channel, update, f"the channel is {channel.status}")
                    del queued[channel_id]
                    parked.pop(channel_id, None)
                    progress = True
                    continue
                if (
                    not channel.machine.idle  # until the peer answers
                    or channel.status not in ("active", "closing")  # until it is active
                    or channel.peer in self.ctx.offline  # until it reconnects (bounded)
                    # the peer refuses everything: until it proposes
                    or (burying and channel.machine.refusals > MAX_BURIAL_REFUSALS)
                ):
                    self._park(channel_id)
                    continue
                if limit is not None and proposed >= limit:
                    return True  # this channel, and any after it, in the next call
                if burying:
                    progress = True
                    proposed += 1
                    try:
                        self._bury(channel, now)
                    except ChannelError as error:  # the backend refused to sign it
                        self._unsignable(channel, [], error, now)
                        self._park(channel_id)
                elif self._propose_queued(channel, now):
                    progress = True
                    proposed += 1
                else:
                    self._park(channel_id)  # every offer waits for a slot
        return False

    def _park(self, channel_id: bytes) -> None:
        """Nothing can be proposed on the channel until it moves (``NodeContext.parked``):
        a hub may hold many channels whose peer went silent with updates queued, and a
        visit of each after every event cost every payment through the hub."""
        del self.ctx.queued[channel_id]
        self.ctx.parked[channel_id] = None

    def _bury(self, channel: Channel, now: int) -> None:
        """Propose a state with no update: it moves the version past the refused one, so
        that the refused proposal can be reported once this (or the next) is irrevocable."""
        self.run(channel, channel.machine.propose((), now))

    def _propose_queued(self, channel: Channel, now: int) -> bool:
        """Propose the longest acceptable part of the queue that fits in one proposal; the
        rest stays queued for the next one, and HTLC offers beyond the channel's free slots
        wait for a slot (``htlc_queue``). True if anything was proposed or failed."""
        size = self._alone.pop(channel.channel_id, MAX_UPDATES_PER_PROPOSAL)
        batch, held = take_batch(channel, channel.queue, size)
        if not batch:
            return False  # every update is an offer waiting for a slot: nothing changes
        good, waiting = self._acceptable(channel, batch, now)
        if not good and len(waiting) == len(batch):
            return False
        channel.queue = [*waiting, *held]
        while good:
            try:
                effects = channel.machine.propose(tuple(good), now)
            except ProposalTooLarge as error:  # big onions: halve until it fits
                if len(good) == 1:
                    self.failed(channel, good[0], f"{error.code}: {error}")
                    return True
                half = len(good) // 2
                good, channel.queue = good[:half], [*good[half:], *channel.queue]
                continue
            except ChannelError as error:
                self._unsignable(channel, good, error, now)
                return False
            self.run(channel, effects)
            return True
        return True  # some failed

    def _unsignable(
        self, channel: Channel, batch: list[Update], error: ChannelError, now: int
    ) -> None:
        """The backend refused to sign what the core accepted (a limit of its ledger the
        channel's rules do not declare: a backend's bug). Nothing is lost and nothing is
        failed that might have gone out: the batch goes back to the head of the queue and
        the channel is parked until it moves, its error shown to the operator. An offer's
        payer deadline still fails it (``expire_waiting``), and the watcher still enforces
        every HTLC on-chain before its expiry."""
        channel.queue = [*batch, *channel.queue]
        self.ctx.count("proposals_unsignable")
        text = (
            f"the {channel.params.chain} backend refused to sign {len(batch)} queued "
            f"updates ({error.code}: {error}); they wait until the channel moves"
        )
        self.ctx.note(f"{channel.channel_id.hex()[:8]}: {text}")
        channel.failed(text, now)

    def _acceptable(
        self, channel: Channel, batch: list[Update], now: int
    ) -> tuple[list[Update], list[Update]]:
        """The updates of ``batch`` that can go out together, and the HTLC offers that must
        wait for a slot (the ledger holds fewer HTLCs than the core allows, or the peer
        took slots meanwhile); the others fail, each with its own reason. The whole batch
        is checked at once first (one pass, the common case); only when that fails is each
        update checked on top of the good ones before it."""
        try:
            channel.machine.check(tuple(batch), now)
            return list(batch), []
        except ChannelError:
            pass
        good: list[Update] = []
        waiting: list[Update] = []
        for update in batch:
            try:
                channel.machine.check((*good, update), now)
                good.append(update)
            except TooManyHtlcs as error:
                if isinstance(update, AddHtlc):
                    waiting.append(update)
                else:
                    self.failed(channel, update, f"{error.code}: {error}")
            except ChannelError as error:
                self.failed(channel, update, f"{error.code}: {error}")
        return good, waiting

    def on_rejected(self, channel: Channel, effect: ProposalRejected) -> None:
        """A proposal of ours is dead for good: propose its updates again (the peer's
        proposal won a conflict) or fail them (the peer refused them)."""
        dropped = effect.updates
        if effect.code == ProposalConflict.code:
            channel.queue = [*dropped, *channel.queue]  # the peer's proposal won: ours again
            retried = self._retries.get(channel.channel_id, {})
            if dropped and all(
                isinstance(u, SettleHtlc | FailHtlc) and u.htlc_id in retried for u in dropped
            ):  # settles going alone after a refusal go alone again (found by review)
                self._alone[channel.channel_id] = len(dropped)
            return
        self.ctx.note(f"peer refused our update on {channel.channel_id.hex()[:8]}: {effect.reason}")
        again = self._again(channel, dropped)
        if again:
            # A settle or fail only takes from what the peer's rules weigh, and dropped, an
            # HTLC whose preimage we hold would go unclaimed (found by review: a trimmed
            # one, for good). Proposed again, on their own.
            channel.queue = [*again, *channel.queue]
            self._alone[channel.channel_id] = len(again)
        proposed_again = {id(u) for u in again}
        for update in dropped:
            if id(update) not in proposed_again:
                self.failed(channel, update, f"{effect.code}: {effect.reason}")

    def _again(self, channel: Channel, dropped: tuple[Update, ...]) -> list[Update]:
        """The settles and fails of a refused proposal to propose again: those whose HTLC
        the channel still holds, each at most ``MAX_RESOLVE_RETRIES`` times; one refused
        more often is shown on the channel."""
        held = {h.id for h in channel.machine.state.htlcs}
        tries = self._retries.setdefault(channel.channel_id, {})
        for htlc_id in [i for i in tries if i not in held]:  # resolved since: forgotten
            del tries[htlc_id]
        again: list[Update] = []
        for update in dropped:
            if not isinstance(update, SettleHtlc | FailHtlc) or update.htlc_id not in held:
                continue
            count = tries.get(update.htlc_id, 0)
            if count < MAX_RESOLVE_RETRIES:
                tries[update.htlc_id] = count + 1
                again.append(update)
                continue
            del tries[update.htlc_id]
            channel.failed(
                f"the peer refused our {type(update).__name__} of HTLC {update.htlc_id} "
                f"{count + 1} times; it is resolved on-chain by its deadline",
                self.ctx.clock(),
            )
        if not tries:
            del self._retries[channel.channel_id]
        return again

    def on_withdrawn(self, channel: Channel, effect: ProposalWithdrawn) -> None:
        """The peer refused our proposal: nothing is in flight; ``flush`` buries it."""
        self.ctx.queued[channel.channel_id] = None
        self.ctx.note(
            f"peer refused version {effect.version} on {channel.channel_id.hex()[:8]} "
            f"({effect.code}); failing its updates once a later version is irrevocable"
        )
