"""The asyncua client side of the bridge: one session per PLC endpoint, many stations.

``PlcSession`` owns the connection (a ``Link`` per (re)connect), one ``StationHandshake``
per station and three tasks: the processor (the only consumer of data changes: the
subscription handler just queues them), the supervisor (reconnect with backoff and a
deadline, then resync from a full read) and the cell heartbeat. Cell code talks to a
station through its ``StationChannel``.

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
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mes_bridge.channel import Signal, StationChannel
from mes_bridge.errors import BridgeError, JobNotCurrent, PlcConnectionError, TagMapError
from mes_bridge.handshake import Notice, NoticeKind, Outcome, StationHandshake, WriteStep
from mes_bridge.jobs import PlcJob, PlcResult
from mes_bridge.link import LINK_ERRORS, ConnectOptions, DataChange, Link
from mes_bridge.nodeids import NodeRef, parse_node_ref
from mes_bridge.tags import Tag, TagMap

__all__ = ["PlcJob", "PlcResult", "PlcSession", "StationChannel"]

log = logging.getLogger(__name__)

# Order in which one batch of changes is applied: PartId and ProgramNo are written by the
# PLC before JobSeq, and may arrive in the same notification as JobSeq.
_APPLY_ORDER = (Tag.PART_ID, Tag.PROGRAM_NO, Tag.RESULT_ACK_SEQ, Tag.HEARTBEAT_PLC, Tag.JOB_SEQ)
_QUIET = {NoticeKind.RESUMED, NoticeKind.REWRITTEN}


@dataclass(frozen=True)
class _Resync:
    generation: int
    values: dict[str, dict[Tag, object]]


class PlcSession:
    """One asyncua client per PLC endpoint serving many stations; an async context manager.

    Entering connects (retrying until ``connect_deadline_s``), resolves namespace URIs,
    checks every mapped node's existence, data type and access (``TagMapError`` naming
    station, tag and node), subscribes, resyncs and starts the cell heartbeat. A lost
    connection is re-established with backoff; past ``reconnect_deadline_s`` (None: never
    give up) every waiting call raises ``PlcConnectionError``.
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
        security_policy: Literal[
            "None", "Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"] = "None",
        security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "None",
        certificate: Path | None = None,
        private_key: Path | None = None,
        private_key_password: str | None = None,
        server_certificate: Path | None = None,
        username: str | None = None,
        password: str | None = None,
        application_uri: str = "urn:intern-cells:bridge",
    ) -> None:
        if not endpoint.startswith("opc.tcp://"):
            raise ValueError(f"PLC endpoint must start with opc.tcp://, got {endpoint!r}")
        if not stations:
            raise ValueError("a PLC session needs at least one station")
        if heartbeat_s <= 0 or connect_deadline_s <= 0 or reconnect_max_delay_s <= 0:
            raise ValueError("heartbeat_s, connect_deadline_s and reconnect_max_delay_s "
                             "must be positive")
        self.endpoint = endpoint
        self._options = ConnectOptions(
            timeout_s=timeout_s, publishing_interval_ms=publishing_interval_ms,
            heartbeat_interval_ms=min(500.0, heartbeat_s * 500),
            application_uri=application_uri, security_policy=security_policy,
            security_mode=security_mode, certificate=certificate, private_key=private_key,
            private_key_password=private_key_password, server_certificate=server_certificate,
            username=username, password=password,
        )
        self._heartbeat_s = heartbeat_s
        self._connect_deadline_s = connect_deadline_s
        self._reconnect_deadline_s = reconnect_deadline_s
        self._max_delay_s = reconnect_max_delay_s
        self._on_notice = on_notice
        self._refs = {sid: _parse_refs(sid, tm) for sid, tm in stations.items()}
        known = dict(known_job_seqs or {})
        self._machines = {sid: StationHandshake(sid, last_job_seq=known.get(sid))
                          for sid in stations}
        self._channels = {sid: StationChannel(self, m) for sid, m in self._machines.items()}
        self._link: Link | None = None
        self._generation = 0  # of the newest link
        self._live_gen: int | None = None  # link that is connected and resynced
        self._lost_gen = 0  # newest generation known lost
        self._failure: BaseException | None = None
        self._closing = False
        self._heartbeat = 0
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> PlcSession:
        self._queue: asyncio.Queue[DataChange | _Resync] = asyncio.Queue()
        self._reconnect = asyncio.Event()
        self._sync = Signal()
        self._tasks = [asyncio.create_task(self._process(), name="plc-process")]
        try:
            await self._connect(self._connect_deadline_s)
            if not await self._sync.until(lambda: self._live_gen is not None,
                                          self._connect_deadline_s, self.failure):
                raise PlcConnectionError(f"PLC at {self.endpoint}: no resync within "
                                         f"{self._connect_deadline_s} s of connecting")
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
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
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
            return self._channels[station_id]
        except KeyError:
            raise KeyError(f"station {station_id!r} is not served by the session to "
                           f"{self.endpoint}; it serves {sorted(self._channels)}") from None

    @property
    def stations(self) -> list[str]:
        return list(self._channels)

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

    # ------------------------------------------------------------------ channel side

    async def apply(self, station_id: str, job: PlcJob,
                    commit: Callable[[], tuple[WriteStep, ...]]) -> None:
        """Commit a handshake step in the machine, then get its writes onto the PLC.

        If the connection is down or drops mid-write, wait for the next resync and write
        again (the values are idempotent), unless the job stopped being current.
        """
        if self._failure is not None:
            raise self._failure
        steps = commit()
        machine = self._machines[station_id]
        waited = False
        while True:
            link = self._link
            if link is not None and self._live_gen == link.generation:
                if waited and not machine.is_current(job):
                    raise JobNotCurrent(f"station {station_id}: job {job.job_seq} stopped "
                                        "being current while the PLC was unreachable")
                try:
                    await link.write_steps(station_id, steps)
                    return
                except LINK_ERRORS as exc:
                    self._lost(link.generation, exc)
                    target = link.generation + 1
            elif link is not None and self._lost_gen != link.generation:
                target = link.generation
            else:
                target = self._generation + 1
            waited = True
            await self._sync.until(
                lambda t=target: self._live_gen is not None and self._live_gen >= t,
                None, self.failure)

    async def write_status(self, station_id: str) -> None:
        """Best effort: CellState now if connected; the next resync writes it otherwise."""
        link = self._link
        state = self._channels[station_id].cell_state
        if state is None or link is None or self._live_gen != link.generation:
            return
        try:
            await link.write([(station_id, Tag.CELL_STATE, state)])
        except LINK_ERRORS as exc:
            self._lost(link.generation, exc)

    # ------------------------------------------------------------------ connection

    async def _connect(self, deadline_s: float | None) -> None:
        """Open a new link and queue its resync, retrying with backoff until the deadline."""
        start = time.monotonic()
        delay, attempts = 0.2, 0
        while True:
            attempts += 1
            try:
                await self._open_link()
                return
            except TagMapError:
                raise
            except LINK_ERRORS as exc:
                last = exc
            left = None if deadline_s is None else deadline_s - (time.monotonic() - start)
            if left is not None and left <= 0:
                raise PlcConnectionError(
                    f"PLC at {self.endpoint} unreachable: {attempts} attempts in "
                    f"{deadline_s:.0f} s, last error: {last!r}") from last
            log.info("PLC at %s unreachable (%r); retrying in %.1f s", self.endpoint, last, delay)
            # Backoff between attempts: there is no event to await for a server coming back.
            await asyncio.sleep(delay if left is None else min(delay, left))
            delay = min(delay * 2, self._max_delay_s)

    async def _open_link(self) -> None:
        gen = self._generation + 1
        link = await Link.open(self.endpoint, self._refs, self._options, generation=gen,
                               sink=self._queue.put_nowait, on_lost=self._lost)
        self._generation, self._link = gen, link
        try:
            values = await link.read_all()
        except BaseException:
            self._link = None
            await link.close(self._options.timeout_s)
            raise
        self._queue.put_nowait(_Resync(gen, values))

    def _lost(self, generation: int, exc: BaseException) -> None:
        if self._closing or generation != self._generation or generation <= self._lost_gen:
            return
        log.warning("connection to PLC at %s lost: %r", self.endpoint, exc)
        self._lost_gen = generation
        self._live_gen = None
        for machine in self._machines.values():
            machine.connection_lost()
        self._reconnect.set()
        self._wake_all()

    async def _supervise(self) -> None:
        while True:
            await self._reconnect.wait()
            self._reconnect.clear()
            old, self._link = self._link, None
            if old is not None:
                await old.close(self._options.timeout_s)
            try:
                await self._connect(self._reconnect_deadline_s)
            except BridgeError as exc:
                log.error("giving up on PLC at %s: %s", self.endpoint, exc)
                self._failure = exc
                self._wake_all()
                return
            log.info("reconnected to PLC at %s (connection %d)", self.endpoint, self._generation)

    async def _beat(self) -> None:
        """HeartbeatCell of every station, one write per tick, while connected."""
        while True:
            await asyncio.sleep(self._heartbeat_s)  # a periodic tick, not a wait for a state
            self._heartbeat = (self._heartbeat + 1) & 0xFFFF
            link = self._link
            if link is None or self._live_gen != link.generation:
                continue
            try:
                await link.write([(sid, Tag.HEARTBEAT_CELL, self._heartbeat)
                                  for sid in self._channels])
            except LINK_ERRORS as exc:
                self._lost(link.generation, exc)
            except BridgeError as exc:
                log.error("heartbeat write refused: %s", exc)

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
                    if isinstance(item, _Resync):
                        self._apply_changes(updates)
                        updates = {}
                        await self._apply_resync(item)
                    elif item.generation == self._live_gen:
                        updates.setdefault(item.station_id, {})[item.tag] = item.value
                self._apply_changes(updates)
            except Exception as exc:  # a bug here must stop the cell, not pass unnoticed
                log.exception("PLC session processing failed")
                self._failure = BridgeError(f"PLC session to {self.endpoint} failed: {exc!r}")
                self._wake_all()
                return

    def _apply_changes(self, updates: dict[str, dict[Tag, object]]) -> None:
        for sid, changes in updates.items():
            machine, channel = self._machines[sid], self._channels[sid]
            for tag in _APPLY_ORDER:
                if tag not in changes:
                    continue
                value = changes[tag]
                if tag is Tag.HEARTBEAT_PLC:
                    channel.heartbeat_seen(value)
                elif not (tag is Tag.JOB_SEQ and value == machine.seen.job_seq):
                    out = machine.observe(tag, value)
                    self._deliver(channel, out)
                    if out.writes:  # the machine only writes from resync; keep it that way
                        raise BridgeError(f"unexpected writes on a data change: {out.writes}")
            channel.changed()

    async def _apply_resync(self, marker: _Resync) -> None:
        gen, link = marker.generation, self._link
        if link is None or gen != link.generation or gen <= self._lost_gen:
            return  # that connection is already gone; its successor brings a new read
        pending: list[tuple[str, tuple[WriteStep, ...]]] = []
        for sid, machine in self._machines.items():
            out = machine.resync(marker.values.get(sid, {}))
            log.info("station %s resync: %s", sid, out.classification)
            self._deliver(self._channels[sid], out)
            if out.writes:
                pending.append((sid, out.writes))
        try:
            for sid, steps in pending:
                await link.write_steps(sid, steps)
            status = [(sid, Tag.CELL_STATE, ch.cell_state)
                      for sid, ch in self._channels.items() if ch.cell_state is not None]
            await link.write(status)
        except LINK_ERRORS as exc:
            self._lost(gen, exc)
            return
        if gen > self._lost_gen:
            self._live_gen = gen
        self._wake_all()

    def _deliver(self, channel: StationChannel, out: Outcome) -> None:
        for notice in out.notices:
            level = logging.INFO if notice.kind in _QUIET else logging.WARNING
            log.log(level, "station %s %s (JobSeq %s): %s", notice.station_id,
                    notice.kind.value, notice.job_seq, notice.detail)
            channel.note(notice)
            if self._on_notice is not None:
                self._on_notice(notice)
        for job in out.jobs:
            channel.offer(job)

    def _wake_all(self) -> None:
        self._sync.fire()
        for channel in self._channels.values():
            channel.changed()


def _parse_refs(station_id: str, tag_map: TagMap) -> dict[Tag, NodeRef]:
    try:
        return {tag: parse_node_ref(text, tag_map.namespace_uri)
                for tag, text in tag_map.resolved().items()}
    except TagMapError as exc:
        raise TagMapError(f"station {station_id}: {exc}") from None
