"""The per-station face of a ``PlcSession``: what one cell task awaits and calls."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from mes_bridge.handshake import Notice, Phase, StationHandshake
from mes_bridge.jobs import INT32_MAX, INT32_MIN, PlcJob, PlcResult

if TYPE_CHECKING:
    from mes_bridge.session import PlcSession

NOTICES_KEPT = 200


class Signal:
    """Wakes every waiter when something changed; waiters re-check their own condition."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float | None) -> None:
        """Return at the next ``fire`` or after ``timeout`` seconds, whichever is first."""
        event = self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    async def until(self, cond: Callable[[], bool], timeout: float | None,
                    failure: Callable[[], BaseException | None]) -> bool:
        """Wait until ``cond()`` holds (True) or ``timeout`` passes (False).

        Raises what ``failure()`` returns as soon as it returns something.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            err = failure()
            if err is not None:
                raise err
            if cond():
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            await self.wait(remaining)


class StationChannel:
    """One station's handshake: jobs in, acknowledgements and results out.

    Meant for one asyncio task per station: ``next_job`` -> ``accept`` -> (work, record)
    -> ``publish_result`` -> ``wait_result_ack``. Every call is safe across a connection
    loss: what was committed is written once the session has reconnected and resynced.
    """

    def __init__(self, session: PlcSession, machine: StationHandshake) -> None:
        self.station_id = machine.station_id
        self._session = session
        self._machine = machine
        self._pending: PlcJob | None = None
        self._changed = Signal()
        self._notices: deque[Notice] = deque(maxlen=NOTICES_KEPT)
        self._plc_heartbeat: tuple[object, float] | None = None
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

        Call only once the result is durable. Returns when the PLC has ResultSeq.
        """
        await self._session.apply(
            self.station_id, job, lambda: self._machine.publish(job, result))

    async def wait_result_ack(self, job: PlcJob, timeout: float) -> bool:
        """True once the PLC echoed ResultAckSeq for ``job``; False after ``timeout`` s."""
        return await self._changed.until(
            lambda: self._machine.result_acked(job), timeout, self._session.failure)

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
        """Seconds since HeartbeatPLC last changed, None if never seen."""
        if self._plc_heartbeat is None:
            return None
        return time.monotonic() - self._plc_heartbeat[1]

    # ------------------------------------------------------------------ session side

    def offer(self, job: PlcJob) -> None:
        self._pending = job

    def note(self, notice: Notice) -> None:
        self._notices.append(notice)

    def heartbeat_seen(self, value: object) -> None:
        if self._plc_heartbeat is None or self._plc_heartbeat[0] != value:
            self._plc_heartbeat = (value, time.monotonic())

    def changed(self) -> None:
        self._changed.fire()

