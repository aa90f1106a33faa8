"""The simulated PLC program: what the line PLC does for each station, part after part.

Per station it writes PartId and ProgramNo, increments JobSeq at the takt, waits for
ResultSeq == JobSeq, latches Result/ErrorCode/CycleTimeMs, writes ResultAckSeq and counts
OK and NOK parts; then the part leaves, towards the station that takes its parts (see
``SimStation.upstream``). For every station it increments HeartbeatPLC once per period. It
changes the PLC's memory only through ``PlcWrites`` (the simulator) and knows nothing of
the OPC UA server.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import random
import time
from collections.abc import Mapping
from typing import Protocol

from asyncua import ua

from mes_bridge.plcsim.station import Injection, JobTiming, LatchedResult, StationState
from mes_bridge.tags import Tag
from mes_bridge.wakeup import Signal


class PlcWrites(Protocol):
    """How the program changes the PLC's memory (``PlcSimulator`` does it)."""

    async def plc_write(self, station_id: str, tag: Tag, value: object) -> None:
        """Write a tag as the PLC program would."""
        ...

    async def plc_write_raw(self, station_id: str, tag: Tag, variant: ua.Variant) -> None:
        """Put a value of any type on a tag's node; the program's memory is unchanged."""
        ...


class PlcProgram:
    """The PLC program of every station; ``latched`` fires each time a result is latched.

    New parts are named ``<part_prefix>-<run_id>-<serial>``, the serial counted line-wide
    from 1: ``run_id`` keeps one run's part ids apart from another's in the same record.
    """

    def __init__(
        self,
        stations: Mapping[str, StationState],
        memory: PlcWrites,
        heartbeat_s: float,
        run_id: str,
    ) -> None:
        self._stations = stations
        self._memory = memory
        self._heartbeat_s = heartbeat_s
        self._run_id = run_id
        self._serial = itertools.count(1)  # part serial numbers, counted line-wide
        # Only a station someone takes parts from keeps the parts that left it.
        self._feeding = {st.cfg.upstream for st in stations.values() if st.cfg.upstream}
        self.latched = Signal()

    def start(self) -> list[asyncio.Task[None]]:
        """One task per station and one for the heartbeats; the caller cancels them."""
        tasks = [
            asyncio.create_task(self._run(st), name=f"plcsim-{st.sid}")
            for st in self._stations.values()
        ]
        tasks.append(asyncio.create_task(self._beat(), name="plcsim-heartbeat"))
        return tasks

    async def _arriving(self, st: StationState) -> str:
        """The id of the part that comes into the station next: a new casting, or the
        next one that left the upstream station (waiting for it)."""
        if st.cfg.upstream is None:
            return f"{st.cfg.part_prefix}-{self._run_id}-{next(self._serial):06d}"
        up = self._stations[st.cfg.upstream]
        await up.left.until(lambda: bool(up.leaving), None, lambda: None)
        part = up.leaving.popleft()
        up.left.fire()  # room on the conveyor: a blocked upstream station goes on
        return part

    def _next_part(self, st: StationState, arriving: str) -> tuple[str, int, Injection]:
        program = st.cfg.program_nos[st.requested % len(st.cfg.program_nos)]
        inj = st.injected.pop(0) if st.injected else Injection()
        part = arriving if inj.part_id is None else inj.part_id
        program = program if inj.program_no is None else inj.program_no
        return part, program, inj

    def _leave(self, st: StationState, part: str) -> None:
        """The part leaves the station, towards the station that takes it (if any)."""
        if st.sid in self._feeding:
            st.leaving.append(part)
            st.left.fire()

    async def _put_part(self, st: StationState, tag: Tag, value: object, inj: Injection) -> None:
        if tag in inj.raw:
            await self._memory.plc_write_raw(st.sid, tag, inj.raw[tag])
        else:
            await self._memory.plc_write(st.sid, tag, value)

    async def _hold_raw(self, st: StationState, tag: Tag, inj: Injection) -> None:
        if tag in inj.raw:
            await self._memory.plc_write_raw(st.sid, tag, inj.raw[tag])
            await asyncio.sleep(st.cfg.raw_hold_s)  # the faulty value stays this long

    async def _run(self, st: StationState) -> None:
        last_start: float | None = None
        while st.cfg.parts is None or st.requested < st.cfg.parts:
            if st.cfg.takt_s and last_start is not None:
                # The line's takt: the next part arrives this long after the previous one.
                await asyncio.sleep(max(0.0, last_start + st.cfg.takt_s - time.monotonic()))
            if st.sid in self._feeding:
                # A full conveyor to the next station blocks this one.
                await st.left.until(lambda: len(st.leaving) < st.cfg.buffer, None, lambda: None)
            arriving = await self._arriving(st)
            if st.cfg.jitter_s:
                # Parts do not arrive in step with anything the cell does.
                await asyncio.sleep(random.uniform(0.0, st.cfg.jitter_s))
            last_start = time.monotonic()
            part, program, inj = self._next_part(st, arriving)
            await self._job(st, part, program, inj)
            self._leave(st, part)

    async def _job(self, st: StationState, part: str, program: int, inj: Injection) -> None:
        """Request one job for ``part`` and latch its result (unless a cold restart made
        the PLC forget the job)."""
        seq = (_as_int(st.mem.get(Tag.JOB_SEQ, 0)) + 1) & 0xFFFFFFFF or 1
        await self._put_part(st, Tag.PART_ID, part, inj)
        await self._put_part(st, Tag.PROGRAM_NO, program, inj)
        await self._hold_raw(st, Tag.JOB_SEQ, inj)
        st.timings[seq] = JobTiming(seq, time.perf_counter())
        epoch, abandons = st.epoch, st.abandons
        await self._memory.plc_write(st.sid, Tag.JOB_SEQ, seq)
        st.requested += 1
        await st.changed.until(
            functools.partial(_answered_or_forgotten, st, seq, epoch, abandons), None, lambda: None
        )
        if st.epoch != epoch:
            return  # cold restart: the PLC forgot this job
        if st.abandons != abandons:
            st.abandoned.append(seq)  # the part moves on unanswered
            return
        st.latch(
            LatchedResult(
                seq,
                part,
                program,
                _as_int(st.mem[Tag.RESULT]),
                _as_int(st.mem[Tag.ERROR_CODE]),
                _as_int(st.mem[Tag.CYCLE_TIME_MS]),
                epoch,
            )
        )
        await self._hold_raw(st, Tag.RESULT_ACK_SEQ, inj)
        await self._memory.plc_write(st.sid, Tag.RESULT_ACK_SEQ, seq)
        self.latched.fire()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)  # HeartbeatPLC ticks once per period
            for st in self._stations.values():
                if st.cfg.heartbeat:
                    beat = (_as_int(st.mem.get(Tag.HEARTBEAT_PLC, 0)) + 1) & 0xFFFF
                    await self._memory.plc_write(st.sid, Tag.HEARTBEAT_PLC, beat)


def _answered_or_forgotten(st: StationState, seq: int, epoch: int, abandons: int) -> bool:
    """The cell answered job ``seq`` (ResultSeq), or a cold restart made the PLC forget it,
    or the program gave it up."""
    return st.epoch != epoch or st.abandons != abandons or st.mem.get(Tag.RESULT_SEQ) == seq


def _as_int(value: object) -> int:
    """A numeric tag's value in PLC memory, which only ever holds what ``int()`` takes."""
    if isinstance(value, int | float | str):
        return int(value)
    raise TypeError(f"PLC memory holds {value!r} where a number belongs")
