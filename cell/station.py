"""One station's loop: PLC job -> recipe -> assigned robot -> result on record -> PLC.

The invariants of the handshake live here: a result is committed to PostgreSQL before
``ResultSeq`` moves; a job already on record is answered from the record, never run
again; a job the cell had accepted before a restart but has no record of ends NOK
``interrupted`` with an alert, because the robot may already have worked on the part.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from cell.clock import Clock
from cell.config import Recipe, Station
from cell.db import models as m
from cell.db.record import JobRecord
from cell.dispatch import Dispatcher
from cell.recorder import Known, Recorder
from cell.roster import robot_for_station
from cell.states import PackML
from mes_bridge.jobs import PlcJob, PlcResult
from mes_bridge.session import StationChannel
from robot.jobs import ErrorCode, JobOutcome, JobSpec

log = logging.getLogger(__name__)

RESULT_OK, RESULT_NOK = 1, 2


@dataclass
class CellContext:
    """What every station loop of one orchestrator shares."""

    sessions: sessionmaker[Session]
    recorder: Recorder
    dispatcher: Dispatcher
    recipe_ids: dict[tuple[str, int], int]
    clock: Clock = field(default_factory=Clock)
    job_timeout_s: float = 300.0
    result_ack_timeout_s: float = 30.0
    counters: dict[str, int] = field(default_factory=dict)

    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1


def _seed(key: str) -> int:
    """A stable per-job seed for the simulated robot, from the job key."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")


class StationLoop:
    """Serves one station's PLC channel until cancelled."""

    def __init__(self, station: Station, channel: StationChannel, ctx: CellContext) -> None:
        self.station = station
        self.channel = channel
        self.ctx = ctx
        self.state = PackML.UNDEFINED

    async def run(self) -> None:
        await self.set_state(PackML.IDLE, "ready")
        while True:
            job = await self.channel.next_job()
            try:
                await self.handle(job)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A job the cell cannot finish stays unanswered at the PLC (ResultSeq does
                # not move), so nothing unrecorded is ever reported; the loop goes on.
                log.exception("station %s: job %s not finished", self.station.id, job.job_seq)
                await self.set_state(PackML.HELD, "internal error; see log")

    async def set_state(self, state: PackML, reason: str) -> None:
        if state == self.state:
            return
        self.state = state
        await asyncio.to_thread(self._store_state, state, reason)
        await self.channel.set_cell_state(int(state))

    def _store_state(self, state: PackML, reason: str) -> None:
        with self.ctx.sessions() as s:
            s.add(m.CellStateEvent(station_id=self.station.id, state=state.name.lower(),
                                   state_code=int(state), reason=reason,
                                   at=self.ctx.clock.now()))
            s.commit()

    async def handle(self, job: PlcJob) -> None:
        started = self.ctx.clock.now()
        part_id = job.part_id or None  # the bridge leaves an unusable PartId empty
        decision = await asyncio.to_thread(self.ctx.recorder.decide, self.station.id,
                                           job.job_seq, part_id, job.counter_reset)
        if decision.known is not None:
            # Already on record: answer from the record (a repeat or a resync).
            self.ctx.count("republished")
            await self.channel.accept(job)
            await self._publish(job, _result_of(decision.known))
            return
        epoch = decision.epoch
        base = dict(station_id=self.station.id, epoch=epoch, job_seq=job.job_seq,
                    part_id=part_id, program_no=job.program_no, started_at=started)
        if job.resumed:
            rec = JobRecord(**base, ended_at=self.ctx.clock.now(), cycle_time_ms=0, ok=False,
                            error_code=int(ErrorCode.INTERRUPTED),
                            detail="job was accepted before a restart and has no result; "
                                   "not executed again")
            await self._finish(job, rec, alert="interrupted")
            return
        await self.channel.accept(job)
        await self.set_state(PackML.EXECUTE, f"job {job.job_seq}")
        recipe = self.station.recipe(job.program_no)
        problem = self._input_problem(job, recipe)
        if problem is not None:
            code, text = problem
            rec = JobRecord(**base, ended_at=self.ctx.clock.now(), cycle_time_ms=0, ok=False,
                            error_code=int(code), detail=text)
            await self._finish(job, rec, alert="bad_input")
            return
        assert recipe is not None
        robot_id = await asyncio.to_thread(self._robot)
        if robot_id is None:
            rec = JobRecord(**base, ended_at=self.ctx.clock.now(), cycle_time_ms=0, ok=False,
                            error_code=int(ErrorCode.NO_ROBOT), task=recipe.task.value,
                            recipe_id=self.ctx.recipe_ids.get((self.station.id, recipe.program_no)),
                            detail="no robot is assigned to this station")
            await self._finish(job, rec, alert="no_robot")
            return
        job_key = f"{self.station.id}:{epoch}:{job.job_seq}"
        spec = JobSpec(job_key=job_key, station_id=self.station.id, robot_id=robot_id,
                       part_id=part_id or "", program_no=job.program_no, task=recipe.task,
                       fasteners=recipe.fasteners, takt_s=recipe.takt_s, seed=_seed(job_key),
                       difficulty=recipe.difficulty)
        outcome = await self.ctx.dispatcher.run(spec, self.ctx.job_timeout_s)
        # A simulated robot answers faster than its cycle: the job ends when its cycle
        # time has passed on the cell's clock, so records and the PLC see line timing.
        await self.ctx.clock.sleep_until(started + timedelta(milliseconds=outcome.cycle_time_ms))
        rec = self._record_of(base, recipe, outcome)
        await self._finish(job, rec, alert=None if rec.ok else "nok")

    def _input_problem(self, job: PlcJob, recipe: Recipe | None) -> tuple[ErrorCode, str] | None:
        problems = {p.value for p in job.problems}
        if "part_id_empty" in problems:
            return ErrorCode.EMPTY_PART_ID, "PLC sent an empty PartId"
        if any(p.startswith("part_id") for p in problems):
            return (ErrorCode.INVALID_PART_ID,
                    f"PLC sent an unusable PartId ({', '.join(sorted(problems))}): "
                    f"{job.raw_part_id!r}")
        if any(p.startswith("program_no") for p in problems):
            return (ErrorCode.UNKNOWN_PROGRAM,
                    f"PLC sent an unusable ProgramNo: {job.raw_program_no!r}")
        if recipe is None:
            known = ", ".join(str(r.program_no) for r in self.station.recipes)
            return (ErrorCode.UNKNOWN_PROGRAM,
                    f"ProgramNo {job.program_no} has no recipe at {self.station.id} "
                    f"(known: {known})")
        return None

    def _record_of(self, base: dict[str, object], recipe: Recipe,
                   outcome: JobOutcome) -> JobRecord:
        return JobRecord(
            **base,  # type: ignore[arg-type]
            ended_at=self.ctx.clock.now(), cycle_time_ms=outcome.cycle_time_ms,
            ok=outcome.outcome.value == "ok" and outcome.error_code == 0,
            error_code=outcome.error_code, robot_id=outcome.robot_id, task=recipe.task.value,
            recipe_id=self.ctx.recipe_ids.get((self.station.id, recipe.program_no)),
            policy_version=outcome.policy_version, detail=outcome.detail,
            fasteners=outcome.fasteners,
        )

    async def _finish(self, job: PlcJob, rec: JobRecord, alert: str | None) -> None:
        """Record durably, raise the alert, then publish; ResultSeq moves only after commit."""
        where = await asyncio.to_thread(self.ctx.recorder.record, rec, alert)
        self.ctx.count("ok" if rec.ok else "nok")
        self.ctx.count(f"recorded_{where}")
        await self._publish(job, PlcResult(result=RESULT_OK if rec.ok else RESULT_NOK,
                                           error_code=rec.error_code,
                                           cycle_time_ms=rec.cycle_time_ms))

    async def _publish(self, job: PlcJob, result: PlcResult) -> None:
        await self.set_state(PackML.COMPLETING, f"job {job.job_seq} result")
        await self.channel.publish_result(job, result)
        if not await self.channel.wait_result_ack(job, self.ctx.result_ack_timeout_s):
            log.warning("station %s: PLC did not latch result %s in %.0f s", self.station.id,
                        job.job_seq, self.ctx.result_ack_timeout_s)
        await self.set_state(PackML.IDLE, "ready")

    def _robot(self) -> str | None:
        with self.ctx.sessions() as s:
            return robot_for_station(s, self.station.id)


def _result_of(known: Known) -> PlcResult:
    return PlcResult(result=RESULT_OK if known.ok else RESULT_NOK, error_code=known.error_code,
                     cycle_time_ms=known.cycle_time_ms)

