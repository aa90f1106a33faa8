"""The per-station face of a ``PlcSession``: what one cell task awaits and calls.

The channel knows its session only as a ``ChannelSession`` (the few calls it makes of it),
so that this module and ``mes_bridge.session`` do not import each other.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol, TypeGuard

from mes_bridge.handshake import StationHandshake
from mes_bridge.handshake_types import Notice, NoticeKind, Phase, WriteStep
from mes_bridge.jobs import INT32_MAX, INT32_MIN, PlcJob, PlcResult
from mes_bridge.wakeup import Signal

NOTICES_KEPT = 200
UINT16_MAX = 0xFFFF


class PlcLiveness(StrEnum):
    """What HeartbeatPLC says about the PLC program of one station."""

    ALIVE = "alive"  # connected, and HeartbeatPLC changed within the stale limit
    STALE = "stale"  # connected, but HeartbeatPLC has not changed for longer than that
    DISCONNECTED = "disconnected"  # no live connection: nothing is known about the PLC


class ChannelSession(Protocol):
    """What a ``StationChannel`` needs of the session serving it (``PlcSession``)."""

    plc_heartbeat_timeout_s: float  # default limit of ``StationChannel.plc_liveness``

    @property
    def connected(self) -> bool:
        """True while the connection is up and resynced."""
        ...

    def failure(self) -> BaseException | None:
        """The error that ended the session for good, if any."""
        ...

    async def apply(
        self, station_id: str, job: PlcJob, commit: Callable[[], tuple[WriteStep, ...]]
    ) -> None:
        """Commit a handshake step in the machine, then get its writes onto the PLC."""
        ...

    async def write_status(self, station_id: str) -> None:
        """Best effort: the station's CellState now if connected, else at the next resync."""
        ...


class StationChannel:
    """One station's handshake: jobs in, acknowledgements and results out.

    Meant for one asyncio task per station: ``next_job`` -> ``accept`` -> (work, record)
    -> ``publish_result`` -> ``wait_result_ack``. Every call is safe across a connection
    loss: what was committed is written once the session has reconnected and resynced.
    """

    def __init__(self, session: ChannelSession, machine: StationHandshake) -> None:
        self.station_id = machine.station_id
        self._session = session
        self._machine = machine
        self._pending: PlcJob | None = None
        self._changed = Signal()
        self._notices: deque[Notice] = deque(maxlen=NOTICES_KEPT)
        self._beat_value: int | None = None  # last valid HeartbeatPLC value
        self._beat_at: float | None = None  # monotonic: its last change, or the last resync
        self._reported = PlcLiveness.DISCONNECTED  # last liveness turned into a notice
        self.cell_state: int | None = None  # last state asked for; rewritten on resync

    # ------------------------------------------------------------------ cell API

    async def next_job(self) -> PlcJob:
        """Wait for the PLC's next job (a new JobSeq, or a resumed one after a resync).

        Jobs that the PLC superseded before they were taken are not returned (a
        ``superseded`` notice records them). Raises ``PlcConnectionError`` if the session
        failed for good.
        """

        def ready() -> bool:
            if self._pending is not None and not self._machine.is_current(self._pending):
                self._pending = None
            return self._pending is not None

        await self._changed.until(ready, None, self._session.failure)
        job, self._pending = self._pending, None
        assert job is not None
        return job

    async def accept(self, job: PlcJob) -> None:
        """JobAckSeq = JobSeq, Busy = True. Raises ``JobNotCurrent`` for a stale job."""
        await self._session.apply(self.station_id, job, lambda: self._machine.accept(job))

    async def publish_result(self, job: PlcJob, result: PlcResult) -> None:
        """Result, ErrorCode, CycleTimeMs, then ResultSeq = JobSeq (last), Busy = False.

        Call only once the result is durable. Returns when the PLC has ResultSeq, at once
        if the PLC already latched this job's result (a repeat after a resync). Raises
        ``JobNotCurrent`` for a job the PLC gave up (a new JobSeq, a counter reset),
        ``PlcWriteError`` if the PLC refused a write (the job stays unanswered).
        """
        if self._machine.result_acked(job):
            return
        await self._session.apply(self.station_id, job, lambda: self._machine.publish(job, result))

    async def wait_result_ack(self, job: PlcJob, timeout: float) -> bool:
        """True once the PLC echoed ResultAckSeq for ``job``; False after ``timeout`` s,
        or as soon as the PLC moved on to another job without echoing it."""
        await self._changed.until(
            lambda: self._machine.result_acked(job) or not self._machine.is_current(job),
            timeout,
            self._session.failure,
        )
        return self._machine.result_acked(job)

    def current(self, job: PlcJob) -> bool:
        """Whether ``job`` is still the PLC's current job (not given up for a new JobSeq
        or a counter reset)."""
        return self._machine.is_current(job)

    async def wait_not_current(self, job: PlcJob) -> None:
        """Return once the PLC has given ``job`` up (see ``current``)."""
        await self._changed.until(
            lambda: not self._machine.is_current(job), None, self._session.failure
        )

    async def set_cell_state(self, code: int) -> None:
        """Publish the PackML state code (CellState); kept and rewritten after a resync."""
        if not isinstance(code, int) or not INT32_MIN <= code <= INT32_MAX:
            raise ValueError(f"cell state must be an Int32, got {code!r}")
        self.cell_state = code
        await self._session.write_status(self.station_id)

    # ------------------------------------------------------------------ status

    @property
    def phase(self) -> Phase:
        return self._machine.phase

    def notices(self) -> list[Notice]:
        """The most recent handshake notices of this station, oldest first."""
        return list(self._notices)

    def plc_heartbeat_age(self) -> float | None:
        """Seconds since HeartbeatPLC last changed or the connection was last resynced,
        whichever is later; None while there is no live connection."""
        if not self._session.connected or self._beat_at is None:
            return None
        return time.monotonic() - self._beat_at

    def plc_liveness(self, stale_after_s: float | None = None) -> PlcLiveness:
        """ALIVE, STALE or DISCONNECTED, with ``stale_after_s`` (default: the session's
        ``plc_heartbeat_timeout_s``) as the limit on ``plc_heartbeat_age``.

        After a (re)connect the PLC gets the full limit to show a change, so a fresh
        connection is ALIVE until proven stale. Only a valid UInt16 that differs from the
        last one counts as a beat; a bad-quality or mistyped value does not.
        """
        age = self.plc_heartbeat_age()
        if age is None:
            return PlcLiveness.DISCONNECTED
        limit = self._session.plc_heartbeat_timeout_s if stale_after_s is None else stale_after_s
        return PlcLiveness.STALE if age > limit else PlcLiveness.ALIVE

    def plc_alive(self, stale_after_s: float | None = None) -> bool:
        """True only if ``plc_liveness(stale_after_s)`` is ALIVE."""
        return self.plc_liveness(stale_after_s) is PlcLiveness.ALIVE

    async def wait_liveness_change(self, since: PlcLiveness, timeout: float) -> PlcLiveness:
        """Return ``plc_liveness()`` as soon as it differs from ``since`` or after ``timeout``.

        A change to STALE is noticed by the session's tick (every ``heartbeat_s``), so it
        arrives up to that much after the limit passed.
        """
        await self._changed.until(lambda: self.plc_liveness() is not since, timeout, lambda: None)
        return self.plc_liveness()

    # ------------------------------------------------------------------ session side

    def offer(self, job: PlcJob) -> None:
        self._pending = job

    def note(self, notice: Notice) -> None:
        self._notices.append(notice)

    def heartbeat_seen(self, value: object, *, resync: bool = False) -> None:
        """HeartbeatPLC as read; at a resync the staleness clock restarts."""
        beat = value if _is_uint16(value) else None
        if resync:
            self._beat_at = time.monotonic()
            self._beat_value = beat
        elif beat is not None and beat != self._beat_value:
            self._beat_value, self._beat_at = beat, time.monotonic()

    def liveness_notice(self) -> Notice | None:
        """A notice if liveness went from ALIVE to STALE or back since the last call."""
        now = self.plc_liveness()
        before, self._reported = self._reported, now
        if before is PlcLiveness.ALIVE and now is PlcLiveness.STALE:
            return Notice(
                self.station_id,
                NoticeKind.PLC_HEARTBEAT_STALE,
                None,
                f"HeartbeatPLC unchanged for {self.plc_heartbeat_age():.1f} s "
                f"(value {self._beat_value})",
            )
        if before is PlcLiveness.STALE and now is PlcLiveness.ALIVE:
            return Notice(
                self.station_id,
                NoticeKind.PLC_HEARTBEAT_RESUMED,
                None,
                f"HeartbeatPLC changes again (value {self._beat_value})",
            )
        return None

    def changed(self) -> None:
        self._changed.fire()


def _is_uint16(value: object) -> TypeGuard[int]:
    """True for a value a UInt16 tag can hold (bools are not numbers here)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= UINT16_MAX
