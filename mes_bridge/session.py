"""The asyncua client side of the bridge: one session per PLC endpoint, many stations.

``PlcSession`` owns the connection (a ``Link`` per (re)connect), its stations (one
``StationHandshake`` and one ``StationChannel`` each, see ``SessionStations``) and three
tasks: the processor (the only consumer of data changes: the subscription handler just
queues them), the supervisor (reconnect with backoff and a deadline, then resync from a
full read; see ``Reconnecting``) and the heartbeat tick. Cell code talks to a station
through its ``StationChannel``.

Heartbeats: every ``heartbeat_s`` the tick writes HeartbeatCell (+1) to every station,
but only while the session is healthy: connected and resynced, not failed, and its
processor has taken the earlier ticks from its queue (so data changes are being handled,
not piling up). Otherwise HeartbeatCell stands still and the PLC's watchdog sees it. The
same tick checks HeartbeatPLC of each station (see ``StationChannel.plc_liveness``) and
reports a station turning stale, or alive again, as a notice.

Usage::

    async with PlcSession(endpoint, {"ST10": tag_map}) as plc:
        ch = plc.station("ST10")
        job = await ch.next_job()
        await ch.accept(job)
        ...  # run it, record it durably
        await ch.publish_result(job, PlcResult(1, 0, 61_500))
        await ch.wait_result_ack(job, timeout=10)
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from mes_bridge.channel import PlcLiveness, StationChannel
from mes_bridge.errors import BridgeError, JobNotCurrent, PlcConnectionError, PlcWriteError
from mes_bridge.handshake_types import Notice, WriteStep
from mes_bridge.jobs import PlcJob, PlcResult
from mes_bridge.link import LINK_ERRORS, ConnectOptions, DataChange
from mes_bridge.reconnect import Reconnecting, Resync
from mes_bridge.security import ClientSecurity, SecurityConfig
from mes_bridge.stations import SessionStations
from mes_bridge.tags import Tag, TagMap
from mes_bridge.wakeup import Signal

__all__ = ["PlcJob", "PlcLiveness", "PlcResult", "PlcSession", "SecurityConfig", "StationChannel"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Tick:
    n: int


class PlcSession(Reconnecting):
    """One asyncua client per PLC endpoint serving many stations; an async context manager.

    Entering connects (retrying until ``connect_deadline_s``), resolves namespace URIs,
    checks every mapped node's existence, data type and access (``TagMapError`` naming
    station, tag and node), subscribes, resyncs and starts the heartbeat tick. A lost
    connection is re-established with backoff; past ``reconnect_deadline_s`` (None: never
    give up) every waiting call raises ``PlcConnectionError``. A security refusal
    (``PlcSecurityError``: untrusted certificate either way, login refused, no such
    endpoint) is never retried: it ends the session at once, on entry or on a reconnect.

    ``security`` (default: plain) is checked when the session is built: certificate, key
    and trust list files are loaded then (``CertificateError`` naming the file).
    ``plc_heartbeat_timeout_s`` is the default limit of ``StationChannel.plc_liveness``.
    """

    def __init__(
        self,
        endpoint: str,
        stations: Mapping[str, TagMap],
        *,
        heartbeat_s: float = 1.0,
        publishing_interval_ms: float = 50.0,
        timeout_s: float = 4.0,
        connect_deadline_s: float = 10.0,
        reconnect_deadline_s: float | None = 300.0,
        reconnect_max_delay_s: float = 5.0,
        known_job_seqs: Mapping[str, int] | None = None,
        on_notice: Callable[[Notice], None] | None = None,
        plc_heartbeat_timeout_s: float = 5.0,
        security: SecurityConfig | None = None,
        session_timeout_s: float = 20.0,
    ) -> None:
        if not endpoint.startswith("opc.tcp://"):
            raise ValueError(f"PLC endpoint must start with opc.tcp://, got {endpoint!r}")
        if not stations:
            raise ValueError("a PLC session needs at least one station")
        if (
            min(heartbeat_s, connect_deadline_s, reconnect_max_delay_s, plc_heartbeat_timeout_s)
            <= 0
        ):
            raise ValueError(
                "heartbeat_s, connect_deadline_s, reconnect_max_delay_s and "
                "plc_heartbeat_timeout_s must be positive"
            )
        self.endpoint = endpoint
        self._options = ConnectOptions(
            timeout_s=timeout_s,
            publishing_interval_ms=publishing_interval_ms,
            heartbeat_interval_ms=min(500.0, heartbeat_s * 500),
            session_timeout_s=session_timeout_s,
        )
        self._security = ClientSecurity(security or SecurityConfig())
        self.plc_heartbeat_timeout_s = plc_heartbeat_timeout_s
        self._heartbeat_s = heartbeat_s
        self._connect_deadline_s = connect_deadline_s
        self._reconnect_deadline_s = reconnect_deadline_s
        self._max_delay_s = reconnect_max_delay_s
        self._refs = {sid: tm.refs(sid) for sid, tm in stations.items()}
        self._stations = SessionStations(self, stations, dict(known_job_seqs or {}), on_notice)
        self._link = None
        self._generation = 0  # of the newest link
        self._live_gen: int | None = None  # link that is connected and resynced
        self._lost_gen = 0  # newest generation known lost
        self._failure: BaseException | None = None
        self._closing = False
        self._heartbeat = 0
        self._ticks_sent = self._ticks_seen = 0
        self._beat_refused = False
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> PlcSession:
        self._queue: asyncio.Queue[DataChange | Resync | _Tick] = asyncio.Queue()
        self._reconnect = asyncio.Event()
        self._sync = Signal()
        self._tasks = [asyncio.create_task(self._process(), name="plc-process")]
        try:
            await self._connect(self._connect_deadline_s)
            if not await self._sync.until(
                lambda: self._live_gen is not None, self._connect_deadline_s, self.failure
            ):
                raise PlcConnectionError(
                    f"PLC at {self.endpoint}: no resync within "
                    f"{self._connect_deadline_s} s of connecting"
                )
        except BaseException:
            await self._shutdown()
            raise
        self._tasks.append(asyncio.create_task(self._supervise(), name="plc-supervise"))
        self._tasks.append(asyncio.create_task(self._beat(), name="plc-heartbeat"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._shutdown()

    async def _shutdown(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:  # asyncio.wait lets a cancellation of the caller itself through
            await asyncio.wait(self._tasks)
        for task in self._tasks:
            if not task.cancelled() and task.exception() is not None:
                log.error("PLC session task %s failed: %r", task.get_name(), task.exception())
        if self._link is not None:
            await self._link.close(self._options.timeout_s)
            self._link = None
        self._live_gen = None
        if self._failure is None:
            self._failure = PlcConnectionError(f"PLC session to {self.endpoint} is closed")
        self._wake_all()

    # ------------------------------------------------------------------ public

    def station(self, station_id: str) -> StationChannel:
        try:
            return self._stations.channels[station_id]
        except KeyError:
            raise KeyError(
                f"station {station_id!r} is not served by the session to "
                f"{self.endpoint}; it serves {sorted(self._stations.channels)}"
            ) from None

    @property
    def stations(self) -> list[str]:
        return list(self._stations.channels)

    @property
    def connected(self) -> bool:
        """True while the connection is up and resynced."""
        return self._live_gen is not None

    @property
    def generation(self) -> int:
        """How many connections this session has made (1 = never reconnected)."""
        return self._generation

    def failure(self) -> BaseException | None:
        """The error that ended the session for good, if any."""
        return self._failure

    @property
    def healthy(self) -> bool:
        """Connected, resynced, not failed, and the processor keeps up with its queue (it
        took every tick marker but perhaps the latest): the condition under which
        HeartbeatCell ticks. A stuck processor stops the heartbeat within two ticks."""
        return self._failure is None and self.connected and self._ticks_sent - self._ticks_seen <= 1

    def subscriptions(self) -> list[tuple[float, int]]:
        """(publishing interval ms, monitored items) of each subscription of the live
        connection; empty while disconnected."""
        link = self._link
        return list(link.subscriptions) if link is not None and self.connected else []

    # ------------------------------------------------------------------ channel side

    async def apply(
        self, station_id: str, job: PlcJob, commit: Callable[[], tuple[WriteStep, ...]]
    ) -> None:
        """Commit a handshake step in the machine, then get its writes onto the PLC.

        If the connection is down or drops mid-write, wait for the next resync and write
        again (the values are idempotent), unless the job stopped being current: then
        return if the PLC has latched its result meanwhile, else raise ``JobNotCurrent``.
        If the PLC refuses the write (``PlcWriteError``) the step is taken back.
        """
        if self._failure is not None:
            raise self._failure
        machine = self._stations.machines[station_id]
        before = machine.mark()
        steps = commit()
        after = machine.mark()
        waited = False
        while True:
            link = self._link
            if link is not None and self._live_gen == link.generation:
                if waited and not machine.is_current(job):
                    if machine.result_acked(job):
                        return  # the resync wrote the step again and the PLC latched it
                    raise JobNotCurrent(
                        f"station {station_id}: job {job.job_seq} stopped "
                        "being current while the PLC was unreachable"
                    )
                try:
                    await link.write_steps(station_id, steps)
                    return
                except PlcWriteError as exc:
                    # Refused, not lost: the step did not happen, so it must not count as
                    # done (the cell retries it, e.g. after the PLC is fixed).
                    machine.revert(before, after)
                    self._stations.write_refused(station_id, job.job_seq, str(exc))
                    raise
                except LINK_ERRORS as exc:
                    self._lost(link.generation, exc)
                    target = link.generation + 1
            elif link is not None and self._lost_gen != link.generation:
                target = link.generation
            else:
                target = self._generation + 1
            waited = True
            await self._sync.until(functools.partial(self._live_since, target), None, self.failure)

    def _live_since(self, generation: int) -> bool:
        """A link of ``generation`` or a later one is connected and resynced."""
        return self._live_gen is not None and self._live_gen >= generation

    async def write_status(self, station_id: str) -> None:
        """Best effort: CellState now if connected; the next resync writes it otherwise.

        A refused status write is reported as a notice, never raised: the cell's work
        must not stop because the PLC will not show its state.
        """
        link = self._link
        state = self._stations.channels[station_id].cell_state
        if state is None or link is None or self._live_gen != link.generation:
            return
        try:
            await link.write([(station_id, Tag.CELL_STATE, state)])
        except PlcWriteError as exc:
            self._stations.write_refused(station_id, None, str(exc))
        except LINK_ERRORS as exc:
            self._lost(link.generation, exc)

    async def _beat(self) -> None:
        """The tick: HeartbeatCell of every station while healthy; a marker to the processor."""
        while True:
            await asyncio.sleep(self._heartbeat_s)  # a periodic tick, not a wait for a state
            healthy, link = self.healthy, self._link
            self._ticks_sent += 1
            self._queue.put_nowait(_Tick(self._ticks_sent))
            if not healthy or link is None:
                continue  # HeartbeatCell stands still: the PLC's watchdog will see it
            self._heartbeat = (self._heartbeat + 1) & 0xFFFF
            try:
                await link.write(
                    [(sid, Tag.HEARTBEAT_CELL, self._heartbeat) for sid in self._stations.channels]
                )
                if self._beat_refused:
                    log.info("PLC at %s takes HeartbeatCell again", self.endpoint)
                self._beat_refused = False
            except PlcWriteError as exc:
                if not self._beat_refused:  # once, not every second
                    log.error("HeartbeatCell write refused: %s", exc)
                self._beat_refused = True
            except LINK_ERRORS as exc:
                self._lost(link.generation, exc)

    # ------------------------------------------------------------------ processing

    async def _process(self) -> None:
        """The one consumer of data changes and resync markers, in arrival order."""
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            updates: dict[str, dict[Tag, object]] = {}
            try:
                for item in batch:
                    if isinstance(item, Resync):
                        self._stations.apply_changes(updates)
                        updates = {}
                        await self._apply_resync(item)
                    elif isinstance(item, _Tick):
                        self._ticks_seen = item.n
                        self._stations.check_liveness()
                    elif item.generation == self._live_gen:
                        updates.setdefault(item.station_id, {})[item.tag] = item.value
                self._stations.apply_changes(updates)
            except Exception as exc:  # a bug here must stop the cell, not pass unnoticed
                log.exception("PLC session processing failed")
                self._failure = BridgeError(f"PLC session to {self.endpoint} failed: {exc!r}")
                self._wake_all()
                return

    async def _apply_resync(self, marker: Resync) -> None:
        gen, link = marker.generation, self._link
        if link is None or gen != link.generation or gen <= self._lost_gen:
            return  # that connection is already gone; its successor brings a new read
        pending = self._stations.resync(marker.values)
        status = self._stations.cell_states()
        try:
            for sid, steps in pending:
                await self._rewrite(sid, functools.partial(link.write_steps, sid, steps))
            await self._rewrite(None, functools.partial(link.write, status))
        except LINK_ERRORS as exc:
            self._lost(gen, exc)
            return
        if gen > self._lost_gen:
            self._live_gen = gen
        self._wake_all()

    async def _rewrite(self, station_id: str | None, write: Callable[[], Awaitable[None]]) -> None:
        """A resync write; one the PLC refuses is reported, and the rest still happen."""
        try:
            await write()
        except PlcWriteError as exc:
            for sid in [station_id] if station_id else list(self._stations.channels):
                self._stations.write_refused(sid, None, f"at resync: {exc}")

    def _enqueue(self, item: DataChange | Resync) -> None:
        self._queue.put_nowait(item)

    def _wake_all(self) -> None:
        self._sync.fire()
        self._stations.wake()
