"""The node process: the asyncio shell that drives a :class:`~..hub.Node`.

The node's logic has no event loop; this module gives it one. A :class:`HubServer` starts
the API, opens the store (taking the leader lease on PostgreSQL), connects the chains,
restores the node and then runs three collaborators: the work pipeline (``pipeline``: one
work queue, group commits, nothing leaves before it is durable), the peer links (``peers``)
and the timers that poll the chains and let time pass for the watcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from chenilles_hub.backend import ChainEvent, EventFetcher, NewBlock
from chenilles_hub.core import Asset
from chenilles_hub.core.errors import MessageTooLarge

from ..api.auth import TOKEN_PREFIX, TokenBook
from ..api.operations import chain_summary
from ..api.service import TransferFailed
from ..config import ConfigError, NodeConfig, PeerConfig
from ..hub.backup import BackupError
from ..hub.gossip import MAX_PARTS
from ..hub.graph_view import GraphView
from ..hub.node import Node
from ..hub.records import Payment
from ..net.transport import Listener, TcpTransport, Transport
from ..store.base import Store
from .backups import BackupFile, PendingBackup
from .bootstrap import (
    Chains,
    build_chains,
    build_open_policy,
    build_policy,
    holder_id,
    load_identity,
    load_token,
    open_store,
    stake_problems,
)
from .chain_fetch import ChainReadFailed, Fetched
from .chain_reads import ChainReads
from .files import private_dir, secure_data_dir
from .peers import Peers
from .pipeline import NodeStopping, Pipeline
from .work import PROPOSALS_PER_JOB, Link

log = logging.getLogger("chenilles.server")
T = TypeVar("T")

#: At shutdown, how long a chain's read still running may take before the node closes its
#: backends (its answer is dropped either way).
FETCH_STOP_WAIT = 5.0
#: A chain's read running this long (seconds) is shown in ``GET /v1/info`` as stalled.
READ_STALLED = 5.0
#: Seconds, at most, between a standby's attempts at the leader lease.
STANDBY_POLL = 1.0


@contextlib.contextmanager
def _bind_errors(key: str, host: str, port: int) -> Iterator[None]:
    """A port in use (or an address not ours) is the operator's to fix: one line naming
    the setting, not an ``OSError`` traceback."""
    try:
        yield
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)  # not asyncio's wrapping
        raise ConfigError(f"{key} = {host}:{port}: cannot listen there: {reason}") from None


class HubServer:
    """One running node: transport, API, timers and the store, from a :class:`NodeConfig`.

    ``chains``/``store``/``transport`` may be given (in-process tests); otherwise they are
    built from the config. Backends given in ``chains`` are this server's alone: it reads
    their events on threads of its own (``EventFetcher``), and one backend instance's
    fetches must never overlap. ``clock`` defaults to wall-clock unix seconds.
    """

    def __init__(
        self,
        config: NodeConfig,
        *,
        chains: Chains | None = None,
        store: Store | None = None,
        transport: Transport | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.config = config
        private_dir(config.data_dir)  # 0700 before any secret is created in it
        self.identity = load_identity(config.identity_file)
        self.token = load_token(config.token_file)
        self.tokens = TokenBook(self.token)
        self.backups = BackupFile(config)
        self._given_chains = chains
        self._given_store = store
        self.transport = transport or TcpTransport(
            self.identity,
            max_handshakes=config.peer_policy.max_handshakes,
            max_handshakes_per_host=config.peer_policy.max_handshakes_per_host,
        )
        self.clock = clock or (lambda: int(time.time()))
        self.node: Node | None = None
        self.chains: Chains | None = None
        self.store: Store | None = None
        self.graph = GraphView()
        self.role = "starting"  # starting, standby, leader, stopping
        self.started_at = time.time()
        self.stats: dict[str, int] = {}
        #: chain name -> seconds its last poll held the node's thread
        self.chain_polls: dict[str, float] = {}
        #: Each RPC chain's reads off the node's thread, between ticks (``chain_reads``).
        self.reads = ChainReads()
        #: chain name -> seconds its last read took off the node's thread (the RPC)
        self.chain_fetches = self.reads.seconds
        #: The background tasks (tick, backup, announce) whose last run failed: (error, when).
        self.background_errors: dict[str, tuple[str, int]] = {}
        self.exit_code = 0
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listener: Listener | None = None
        self._api_runner: Any = None
        self.listen_port = config.listen_port
        self.api_port = config.api_port
        self.pipeline = Pipeline(
            self.count,
            lambda outbox: self.peer_links.send_all(outbox),
            lambda link, peer: self.peer_links.drop(link, peer),
            self.request_stop,
            lambda link, peer, error: self.peer_links.fault(link, peer, error),
        )
        self.peer_links = Peers(
            config, self.node_id, self.transport, self.graph, self.pipeline, self._spawn, self.count
        )

    # === life cycle ==========================================================================

    @property
    def node_id(self) -> bytes:
        return self.identity.node_id

    @property
    def links(self) -> dict[bytes, Link]:
        return self.peer_links.links

    @property
    def peers(self) -> dict[bytes, PeerConfig]:
        return self.peer_links.configured

    def count(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n

    def load(self) -> dict[str, float | int]:
        return self.pipeline.load()

    def request_stop(self, reason: str = "requested", exit_code: int = 0) -> None:
        if not self._stop.is_set():
            log.info("stopping: %s", reason)
            self.exit_code = exit_code
            self._stop.set()

    async def run(self, *, install_signals: bool = True) -> int:
        """Serve until stopped (SIGTERM/SIGINT, ``POST /v1/stop``, a lost lease)."""
        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop, signal.Signals(sig).name)
        try:
            await self.start()
            await self._stop.wait()
        finally:
            await self.shutdown()
        return self.exit_code

    async def start(self) -> None:
        from ..api.http import start_api  # aiohttp is only needed by a running node

        phase = time.monotonic()
        timings: dict[str, float] = {}

        def lap(name: str) -> None:
            nonlocal phase
            now = time.monotonic()
            timings[name] = round(now - phase, 3)
            phase = now

        secure_data_dir(
            self.config.data_dir,
            [
                self.config.identity_file,
                self.config.token_file,
                self.config.key_path,
                self.config.backup_path,
            ],
        )
        self._write_pid()
        tls = None
        if self.config.api_uses_tls:
            from .tls import server_context  # imports cryptography: only when TLS is on

            tls = await self.in_worker(server_context, self.config)
        with _bind_errors("api.listen", self.config.api_host, self.config.api_port):
            self._api_runner, self.api_port = await start_api(self, tls)
        store = self._given_store
        if store is None:
            store = await self.in_worker(open_store, self.config)
        self.store = store
        self.tokens.load(await self.in_worker(store.settings_with_prefix, TOKEN_PREFIX))
        lap("api_and_store")
        await self._acquire_lease()
        if self._stop.is_set():
            return
        # a standby that took over: the tokens the former leader created since our start
        self.tokens.load(await self.in_worker(store.settings_with_prefix, TOKEN_PREFIX))
        lap("lease")
        chains = self._given_chains
        if chains is None:
            chains = await self.in_worker(build_chains, self.config, self.store)
        self.chains = chains
        problems = stake_problems(self.config, chains)
        if problems:
            raise ConfigError("; ".join(problems))
        for name, chain in chains.names.items():
            summary = chain_summary(chains.backends[chain], chains.accounts[chain], name)
            log.info("chain %s in use: %s", name, summary, extra={"chain_in_use": summary})
        self.node = Node(
            identity=self.identity,
            backends=chains.backends,
            accounts=chains.accounts,
            clock=self.clock,
            name=self.config.name,
            policy=build_policy(self.config),
            store=self.store,
            confirmations={
                chains.names[c.name]: c.confirmations
                for c in self.config.chains
                if c.confirmations is not None and c.name in chains.names
            },
            open_policy=build_open_policy(self.config),
            unavailable={u.chain: u.error for u in chains.unavailable.values()},
        )
        self.node.virtual.request_timeout = self.config.virtual_request_timeout
        lap("chains")
        self.pipeline.node, self.pipeline.store = self.node, self.store
        self.node.durable_barrier = self.pipeline.make_durable
        await self.in_worker(self.node.restore)
        # Until a peer connects (and reestablishes), nothing is proposed to it: updates
        # wait in their queue under the payer's deadline (hub/htlc_queue.py).
        self.node.ctx.offline.update(c.peer for c in self.node.channels.values())
        self.node.autocommit = False  # the receive loop and ``call`` checkpoint per job
        self.node.proposals_per_job = PROPOSALS_PER_JOB
        self.node.report_outcomes = True  # transfers and payments callers wait for
        self._spawn(self.pipeline.work_loop())
        self._spawn(self.pipeline.write_loop())
        lap("restore")
        # The first chain poll, before peers or API calls can change anything: it records
        # where each chain's event feed starts (``chain-origin/<name>``), so a node stopped
        # even before its first timer tick resumes from there, not from a later tip.
        try:
            await self.call(self._chain_tick)
        except Exception:
            self.count("tick_errors")
            log.exception("the first timer tick failed; the next one comes as usual")
        with _bind_errors("node.listen", self.config.listen_host, self.config.listen_port):
            self._listener = await self.transport.serve(
                self.config.listen_host,
                self.config.listen_port,
                self.peer_links.on_incoming,
                allow=self.peer_links.allow,
            )
        self.listen_port = self._listener.port
        self.role = "leader"
        for peer in self.config.peers:
            self._spawn(self.peer_links.dial_loop(peer))
        for saved in await self.in_worker(self.node.settings.peers):
            self.peer_links.add(PeerConfig(saved.node_id, saved.host, saved.port))
        self._spawn(self._timer_loop())
        log.info("start-up phases (s): %s", timings, extra={"phases": timings})
        log.info(
            "node %s (%s) serving peers on %s:%d, API on %s:%d%s",
            self.config.name,
            self.node_id.hex(),
            self.config.listen_host,
            self.listen_port,
            self.config.api_host,
            self.api_port,
            f" (TLS, certificate {self.config.cert_path})" if tls else "",
        )

    async def shutdown(self) -> None:
        self.role = "stopping"
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._listener is not None:
            await self._listener.close()
        await self.peer_links.close_all()
        if self._api_runner is not None:
            await self._api_runner.cleanup()
        await self.pipeline.shutdown()
        self.reads.drop()
        await self.reads.stop(FETCH_STOP_WAIT)  # before the chains' connections close
        if self.chains is not None and self._given_chains is None:
            self.chains.close()
        if self.store is not None and self._given_store is None:
            self.store.close()
        with contextlib.suppress(OSError):
            if self.config.pid_file.read_text().strip() == str(os.getpid()):
                self.config.pid_file.unlink()
        log.info("node %s stopped", self.config.name)

    def _write_pid(self) -> None:
        self.config.pid_file.write_text(f"{os.getpid()}\n")

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a node task failed", exc_info=task.exception())
            self.request_stop(f"internal error: {task.exception()!r}", exit_code=1)

    # === the leader lease (PostgreSQL) =======================================================

    async def _acquire_lease(self) -> None:
        acquire = getattr(self.store, "acquire_lease", None)
        if acquire is None:
            return  # SQLite: the file lock already makes this process the only writer
        holder = holder_id()
        ttl = self.config.lease_ttl
        self.role = "standby"
        while not self._stop.is_set():
            if await self.in_worker(acquire, self.config.name, holder, ttl):
                log.info("holding the leader lease for %s as %s", self.config.name, holder)
                self._spawn(self._lease_loop())
                return
            log.info("standby: the lease on %s is held by another process", self.config.name)
            with contextlib.suppress(TimeoutError):
                # At least every second: a leader that dies frees its lease at once (its
                # database connection closes), whatever the TTL.
                await asyncio.wait_for(self._stop.wait(), min(ttl / 3, STANDBY_POLL))

    async def _lease_loop(self) -> None:
        renew = self.store.renew_lease  # type: ignore[union-attr]
        while True:
            await asyncio.sleep(self.config.lease_ttl / 3)
            ok = await asyncio.get_running_loop().run_in_executor(None, renew)
            if not ok:
                # Someone else may be writing already: stop at once, sign nothing more.
                log.critical("lost the leader lease: stopping")
                self.request_stop("lost the leader lease", exit_code=3)
                return

    # === calling the node (the API's NodeService) ===========================================

    def connections(self) -> dict[bytes, bool]:
        return self.peer_links.connections()

    def stranger_links(self) -> dict[str, int]:
        """Strangers' links now, their bound, connections refused at the bounds, links
        that stopped counting as strangers, strangers that gave way to newcomers, and
        members' links that count again (their standing lapsed)."""
        return {
            "connected": self.peer_links.strangers_linked(),
            "max": self.peer_links.max_strangers,
            "refused": self.stats.get("strangers_refused", 0),
            "handshakes_refused": getattr(self.transport, "handshakes_refused", 0),
            # links that stopped counting: their peer funded a channel, or was added
            "promoted": self.stats.get("strangers_promoted", 0),
            # strangers that gave way to a newcomer after stranger_tenure seconds
            "evicted": self.stats.get("strangers_evicted", 0),
            # members' links whose standing lapsed: strangers' again, or closed if no
            # place was free
            "lapsed": self.stats.get("members_lapsed", 0),
        }

    async def in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.pipeline.in_worker(fn, *args)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a read of the node's state (an API view) in the work queue: it is answered
        after the write of its job, so it never shows anything a crash could take back."""
        return await self.pipeline.call(fn, *args)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the node's thread in the next group commit; return its result
        (or raise its error) once what it queued is durable and sent."""
        return await self.pipeline.call(fn, *args)

    async def transfer(self, channel_id: bytes, asset: Asset, amount: int) -> int:
        """Pay the channel's peer ``amount`` directly; return the version of the signed state
        that carries it once both sides hold it (raises :class:`TransferFailed` if the
        channel or the peer refused it)."""
        (outcome,) = await self.pipeline.transfers([(channel_id, asset, amount)])
        if isinstance(outcome, TransferFailed):
            raise outcome
        return outcome

    async def transfers(self, items: list[tuple[bytes, Asset, int]]) -> list[int | TransferFailed]:
        return await self.pipeline.transfers(items)

    @contextlib.contextmanager
    def payment_outcome(self, payment_hash: bytes) -> Iterator[asyncio.Future[Payment]]:
        with self.pipeline.payment_outcome(payment_hash) as done:
            yield done

    async def backup(self, *, write: bool) -> dict[str, Any]:
        assert self.node is not None and self.store is not None
        if not write:
            return await self.read(self.backups.export, self.store, self.node)
        pending = await self.in_worker(self._take_backup)
        return await asyncio.to_thread(pending.finish)

    def _take_backup(self) -> PendingBackup:
        """On the node's thread: once the writer has written every job handed to it, read
        what the backup will hold (the store then holds every channel the node knows)."""
        assert self.node is not None and self.store is not None
        if not self.pipeline.wait_written(timeout=30.0):
            raise BackupError("the store did not catch up with the node in 30 s: not written")
        return self.backups.take(self.store, self.node)

    async def _write_backup(self, pending: PendingBackup) -> None:
        """Seal and write a backup off the node's thread; the timer goes on meanwhile."""
        try:
            await asyncio.to_thread(pending.finish)
            self.background_errors.pop("backup", None)
        except Exception as exc:
            self.backups.failed(self.config.tick_interval)
            self._failed("backup", exc, "writing the channel backup failed; tried again later")
        finally:
            self.backups.writing = False

    def save_setting(self, key: str, value: bytes) -> None:
        assert self.store is not None
        self.store.set_setting(key, value)

    def add_peer(self, peer: PeerConfig) -> None:
        """A peer added at run time (API): dialled like a configured one (the API has the
        node persist it first)."""
        self.peer_links.add(peer)

    def remove_peer(self, node_id: bytes) -> bool:
        """Stop dialling ``node_id`` and drop its link; True if it was known."""
        return self.peer_links.remove(node_id)

    # === time and chains =====================================================================

    async def _timer_loop(self) -> None:
        """The node's clock: never dies of one failure (it is logged and counted, and the
        next tick comes as usual), or deadlines would pass unwatched."""
        last_announce = 0.0
        while True:
            await asyncio.sleep(self.config.tick_interval)
            try:
                await self._tick()
                self.count("ticks")
                self.background_errors.pop("tick", None)
            except Exception as exc:
                self._failed("tick", exc, "a timer tick failed; the next one comes as usual")
            if not await self._check_standing():
                return
            if self.backups.may_write():  # a channel opened or closed (or an interval)
                try:
                    pending = await self.in_worker(self._take_backup)
                except Exception as exc:
                    self.backups.failed(self.config.tick_interval)
                    self._failed("backup", exc, "reading the channel backup failed")
                else:
                    self.backups.writing = True
                    self._spawn(self._write_backup(pending))
                    del pending  # its view: hundreds of MB with many channels
            if time.monotonic() - last_announce >= self.config.announce_interval:
                last_announce = time.monotonic()
                try:
                    left_out = await self.peer_links.announce_all()
                except Exception as exc:
                    self._failed("announce", exc, "announcing our channels failed")
                else:
                    if not left_out:
                        self.background_errors.pop("announce", None)
                    elif "announce" not in self.background_errors:  # said once, not each tick
                        self._failed(
                            "announce",
                            MessageTooLarge(
                                f"{left_out} of our edges did not fit in an announcement "
                                f"({MAX_PARTS} frames): peers learn the largest capacities only"
                            ),
                            "announcing some of our channels only",
                        )

    async def _check_standing(self) -> bool:
        """The tick's checks of which strangers became members (only while strangers are
        linked) and which members lost their standing, each on the node's thread; one
        failing is reported apart and does not stop the other. ``False`` once the node is
        stopping."""
        node = self.node
        if node is None:
            return True
        links = self.peer_links
        checks = [("member_check", links.demote_lapsed, "which members have standing")]
        if links.strangers_linked():
            checks.insert(
                0, ("stranger_check", links.promote_members, "which strangers are members")
            )
        for task, check, what in checks:
            try:
                await check(node)
                self.background_errors.pop(task, None)
            except NodeStopping:
                return False
            except Exception as exc:
                self._failed(task, exc, f"asking {what} failed")
        return True

    def _failed(self, task: str, exc: Exception, what: str) -> None:
        """A background task failed: counted (``<task>_errors``), logged, and kept until it
        next succeeds for ``GET /v1/info`` (``background_errors``): an operator sees it
        where they look, not only in the log."""
        self.count(f"{task}_errors")
        self.background_errors[task] = (f"{type(exc).__name__}: {exc}", int(time.time()))
        log.error(what, exc_info=exc)

    async def _tick(self) -> None:
        """One timer tick: every chain polled, then the watcher's tick.

        A chain reached over RPC whose backend splits its poll (``EventFetcher``) is read
        on a thread of its own, every such chain at once, and what was read is handed to
        the node's thread as each read ends: the node never waits on their round trips,
        and a slow endpoint delays its own chain's events only. The tick waits for the
        reads one tick interval at most: a read still running then (an endpoint that
        stopped answering) is left to end on its own, is applied at a later tick, and no
        other read of that chain starts meanwhile; past ``READ_STALLED`` seconds it is shown
        in ``GET /v1/info``. What a read returned and the node failed to apply is applied
        again, before anything newer of that chain. A chain whose clock the watcher needed
        in the last minute (an HTLC in flight, a dispute) is asked for it with its read
        (``ClockFetcher``), so the watcher's tick below makes no round trip for it.

        Any other chain (an embedded ledger) is polled in a job of its own on the node's
        thread, so a message waits for one such poll at most. A chain whose poll fails does
        not keep the others or the watcher's tick from their turn (the first error is
        raised after)."""
        assert self.chains is not None
        loop = asyncio.get_running_loop()
        error: Exception | None = None
        reading: dict[asyncio.Future[Fetched], str] = {}
        on_our_thread: list[str] = []
        for name in list(self.chains.names):
            chain = self.chains.names[name]
            try:
                thread = self.reads.thread(name, self.chains.backends[chain])
            except Exception as exc:  # fetches_off_thread raised: this chain's turn is over
                self._poll_failed(name, exc)
                continue
            if thread is None:
                on_our_thread.append(name)
                continue
            unapplied = self.reads.unapplied(name)
            if unapplied is not None:  # first what was read before, then read on
                try:
                    await self.call(self._poll_chain, name, unapplied)
                except Exception as exc:  # the others and the deadlines still get their turn
                    error = error or exc
                if self.reads.unapplied(name) is not None:
                    continue
            reading[self.reads.start(name, chain, thread, loop)] = name
        for name in on_our_thread:  # while the others are read
            try:
                await self.call(self._poll_chain, name)
            except Exception as exc:
                error = error or exc
        deadline = loop.time() + self.config.tick_interval
        while reading:
            done, _ = await asyncio.wait(
                reading, timeout=max(0.0, deadline - loop.time()), return_when=FIRST_COMPLETED
            )
            if not done:
                break
            for future in done:
                name = reading.pop(future)
                fetched = self.reads.ended(name, future)
                if isinstance(fetched, Exception):  # counted and shown, as a failed poll
                    self._poll_failed(name, fetched)
                    continue
                try:
                    await self.call(self._poll_chain, name, fetched)
                except Exception as exc:
                    error = error or exc
        for name in reading.values():
            running = self.reads.running_for(name)
            if running >= READ_STALLED:
                self._poll_failed(
                    name,
                    TimeoutError(
                        f"reading the chain has not ended in {running:.0f} s: "
                        "is its endpoint answering? (its events wait; other chains go on)"
                    ),
                )
        await self.call(self._watch_tick)
        if error is not None:
            raise error

    def _chain_tick(self) -> None:
        """Every chain polled, then the watcher's tick, in one job (the first tick, at
        start-up, before peers connect: every poll on the node's thread)."""
        assert self.chains is not None
        for name in list(self.chains.names):
            self._poll_chain(name)
        self._watch_tick()

    def _poll_chain(self, name: str, fetched: Fetched | None = None) -> None:
        """Poll chain ``name`` on the node's thread (``poll_events``), or apply what its
        read off the thread returned (``apply_events``), and hand the events to the
        watcher. A failure is counted and shown; the other chains and the watcher's tick go
        on, and what was read but not applied is kept to be applied again before anything
        newer. How long this held the node's thread is kept for ``/metrics``
        (``chenilles_chain_poll_seconds``)."""
        assert self.chains is not None
        backend = self.chains.backends[self.chains.names[name]]
        started = time.perf_counter()
        try:
            if fetched is None:
                events = backend.poll_events()
            else:
                assert isinstance(backend, EventFetcher)
                events = backend.apply_events(fetched.data)
        except Exception as exc:  # an unreachable chain must not stop the others
            if fetched is not None:
                self.reads.kept_unapplied(name, fetched)
            self._poll_failed(name, exc)
            return
        finally:
            self.chain_polls[name] = time.perf_counter() - started
        self.reads.applied(name, self.chains.names[name], fetched)
        self._take_events(name, events)
        if fetched is not None:
            self._clock_read(name, fetched)

    def _clock_read(self, name: str, fetched: Fetched) -> None:
        """A clock asked for with chain ``name``'s read that could not be read: counted
        (``chain_clock_fetch_errors``), logged once, and shown in ``GET /v1/info``
        (``background_errors``, task ``clock <name>``) until a read brings one or no longer
        asks for it (the watcher reads the clock on the node's thread meanwhile)."""
        assert self.chains is not None
        task = f"clock {name}"
        if not fetched.clock_error:  # read, or no longer asked for: nothing to show
            self.background_errors.pop(task, None)
            return
        self.count("chain_clock_fetch_errors")
        if task not in self.background_errors:
            chain = self.chains.names[name]
            log.warning("reading %s's clock failed: %s", chain, fetched.clock_error)
        self.background_errors[task] = (fetched.clock_error, int(time.time()))

    def _poll_failed(self, name: str, exc: Exception) -> None:
        """A chain could not be read this tick: counted (``chain_poll_errors``), logged,
        and shown in ``GET /v1/info`` (``background_errors``, task ``poll <name>``) until
        a poll of that chain succeeds; the other chains and the watcher go on."""
        assert self.chains is not None
        self.count("chain_poll_errors")
        # a failed read says what the backend raised (ChainReadFailed's text), not itself
        what = str(exc) if isinstance(exc, ChainReadFailed) else f"{type(exc).__name__}: {exc}"
        self.background_errors[f"poll {name}"] = (what, int(time.time()))
        log.warning("polling %s failed: %s", self.chains.names[name], what)

    def _take_events(self, name: str, events: list[ChainEvent]) -> None:
        """Chain ``name``'s new events to the watcher; the first block seen is kept as where
        to resume the chain's feed after a restart."""
        assert self.node is not None and self.chains is not None and self.store is not None
        self.background_errors.pop(f"poll {name}", None)
        chain = self.chains.names[name]
        if events:
            try:
                self.node.on_chain_events(chain, events)
            except Exception:
                self.count("chain_event_errors")
                log.exception("handling %d events of %s failed", len(events), chain)
        key = f"chain-origin/{name}"
        heights = [e.height for e in events if isinstance(e, NewBlock)]
        if heights and self.store.get_setting(key) is None:
            # Where to resume the event feed after a restart: a little before the
            # first block seen, so nothing between connecting and polling is missed.
            self.store.set_setting(key, str(max(0, heights[0] - 64)).encode())

    def _watch_tick(self) -> None:
        """Let time pass for the watcher (deadlines), once every chain was polled."""
        assert self.node is not None
        # clocks whose read started within the last tick (the watcher acts at most a tick
        # late); for any other chain the watcher reads the clock itself
        self.node.tick(self.reads.take_fresh_clocks(self.config.tick_interval))
        self.reads.want_clocks(self.node.watched_chains())
        self.backups.note(self.node)
