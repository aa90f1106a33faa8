"""One station's loop: PLC job -> recipe -> assigned robot -> result on record -> PLC.

The invariants of the handshake live here: a result is durable (PostgreSQL or the local
outbox) before ``ResultSeq`` moves; a job already on record is answered from the record,
never run again; a job the cell had accepted before a restart but has no record of ends
NOK ``interrupted`` with an alert, because the robot may already have worked on the part.

While no robot serves the station, or its robot's worker is offline, the station is Held
and the PLC's job waits unacknowledged. A NOK job whose recipe says ``hold``, and any
interrupted job, holds the station after its result is published until a technician has
cleared the alert.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from cell.clock import Clock
from cell.config import Recipe, Station
from cell.db.record import JobRecord
from cell.dispatch import Dispatcher
from cell.holds import HOLDING_ALERTS, StationDb
from cell.recorder import Known, Recorder
from cell.states import PackML, path
from mes_bridge.channel import PlcLiveness
from mes_bridge.errors import JobNotCurrent
from mes_bridge.jobs import PlcJob, PlcResult
from mes_bridge.session import StationChannel
from robot.jobs import ErrorCode, JobOutcome, JobSpec

log = logging.getLogger(__name__)

RESULT_OK, RESULT_NOK = 1, 2
NOT_RETRIED = {
    int(ErrorCode.INTERRUPTED),
    int(ErrorCode.ROBOT_TIMEOUT),
    int(ErrorCode.DISPATCH_FAILED),
    int(ErrorCode.MISSING_NUT),
}


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
    walk_s: float = 25.0  # simulated time a robot takes to walk to a new station
    poll_s: float = 0.25  # wall seconds between checks while Held
    counters: dict[str, int] = field(default_factory=dict)
    robot_at: dict[str, str] = field(default_factory=dict)  # robot -> station of its last job
    draining: bool = False  # stopping: finish the running job, take no new one

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
        self.db = StationDb(ctx.sessions, station.id)
        self.state = PackML.UNDEFINED
        self.busy = False
        self.plc_stale = False
        self._state_lock = asyncio.Lock()

    async def run(self) -> None:
        """Serve jobs until cancelled, or until ``ctx.draining`` after the running job."""
        self.state = PackML.STOPPED
        await self.set_state(PackML.IDLE, "orchestrator started")
        watcher = asyncio.create_task(self._watch_plc(), name=f"plc-watch-{self.station.id}")
        try:
            while not self.ctx.draining:
                job = await self.channel.next_job()
                if self.ctx.draining:
                    break  # not acknowledged: the PLC's job waits for the next start
                self.busy = True
                try:
                    await self._serve(job)
                finally:
                    self.busy = False
        finally:
            watcher.cancel()
        await self.set_state(PackML.STOPPED, "orchestrator stopping")

    async def _watch_plc(self) -> None:
        """Hold the station while the PLC's heartbeat is stale, with an alert that clears
        itself when the heartbeat returns. A running job finishes first."""
        liveness = PlcLiveness.ALIVE
        alert_id: int | None = None
        while True:
            liveness = await self.channel.wait_liveness_change(liveness, timeout=5.0)
            stale = liveness is PlcLiveness.STALE
            if stale == self.plc_stale:
                continue
            self.plc_stale = stale
            now = self.ctx.clock.now()
            age = self.channel.plc_heartbeat_age() or 0.0
            if stale:
                alert_id = await asyncio.to_thread(
                    self.db.raise_alert,
                    "plc_heartbeat",
                    f"{self.station.id}: PLC heartbeat unchanged for {age:.0f} s",
                    now,
                )
                if not self.busy:
                    await self.set_state(PackML.HELD, "PLC heartbeat stale")
            else:
                if alert_id is not None:
                    await asyncio.to_thread(self.db.clear_alert, alert_id, now)
                    alert_id = None
                if not self.busy and self.state is PackML.HELD:
                    await self.set_state(PackML.IDLE, "PLC heartbeat back")

    async def _serve(self, job: PlcJob) -> None:
        delay = 1.0
        while True:
            try:
                await self.handle(job)
                return
            except asyncio.CancelledError:
                raise
            except JobNotCurrent as exc:
                # The PLC gave the job up (its counters reset, or a newer JobSeq): there is
                # nobody left to answer. What was recorded for it stays on record; trying
                # again would block the station for good.
                log.warning("station %s: %s", self.station.id, exc)
                self.ctx.count("given_up_by_plc")
                return
            except Exception as exc:
                # Unanswered, the job keeps the PLC waiting, so nothing unrecorded is ever
                # reported. Handling it again is safe: a recorded job is answered from the
                # record and the worker runs a job key only once.
                log.exception("station %s: job %s not finished", self.station.id, job.job_seq)
                await self.set_state(PackML.HELD, f"cell error, retrying: {exc}")
                await asyncio.sleep(delay)
                delay = min(2 * delay, 30.0)

    async def set_state(self, state: PackML, reason: str) -> None:
        """Go to ``state`` through PackML's intermediate states (Holding before Held,
        Resetting before Idle, ...), each stored with ``reason``; the PLC sees the last."""
        async with self._state_lock:  # the PLC watcher changes states too
            route = path(self.state, state)
            if not route:
                return
            self.state = state
            await asyncio.to_thread(self.db.state_events, route, reason, self.ctx.clock.now())
            await self.channel.set_cell_state(int(state))

    async def handle(self, job: PlcJob) -> None:
        while self.plc_stale:  # a PLC whose program is not running gets no answer
            await self.set_state(PackML.HELD, "PLC heartbeat stale")
            await asyncio.sleep(self.ctx.poll_s)
        part_id = job.part_id or None  # the bridge leaves an unusable PartId empty
        decision = await asyncio.to_thread(
            self.ctx.recorder.decide, self.station.id, job.job_seq, part_id, job.counter_reset
        )
        if decision.known is not None:
            # Already on record: answer from the record (a repeat or a resync).
            self.ctx.count("republished")
            await self.channel.accept(job)
            await self._publish(job, _result_of(decision.known))
            return
        started = self.ctx.clock.now()
        base = dict(
            station_id=self.station.id,
            epoch=decision.epoch,
            job_seq=job.job_seq,
            part_id=part_id,
            program_no=job.program_no,
            started_at=started,
        )
        if job.resumed:
            await self._finish(
                job,
                self._nok(
                    base,
                    ErrorCode.INTERRUPTED,
                    "job was accepted before a restart and has no result; not executed again",
                ),
                "interrupted",
            )
            return
        recipe = self.station.recipe(job.program_no)
        problem = self._input_problem(job, recipe)
        if problem is not None:
            await self.channel.accept(job)
            await self.set_state(PackML.EXECUTE, f"job {job.job_seq}: rejecting bad input")
            await self._finish(job, self._nok(base, *problem), "bad_input")
            return
        assert recipe is not None
        robot_id = await self._await_robot()
        base["started_at"] = started = self.ctx.clock.now()
        await self.channel.accept(job)
        came_from = self.ctx.robot_at.get(robot_id)
        if came_from is not None and came_from != self.station.id:
            await self.set_state(PackML.STARTING, f"robot {robot_id} walking from {came_from}")
            await self.ctx.clock.sleep(self.ctx.walk_s)
        self.ctx.robot_at[robot_id] = self.station.id
        await self.set_state(PackML.EXECUTE, f"job {job.job_seq} on robot {robot_id}")
        key = f"{self.station.id}:{decision.epoch}:{job.job_seq}"
        outcome = await self._run_robot(key, robot_id, part_id or "", recipe, started, 1)
        attempt = 1
        if (
            outcome.error_code
            and recipe.on_nok == "retry_once"
            and outcome.error_code not in NOT_RETRIED
        ):
            attempt = 2
            self.ctx.count("retried")
            outcome = await self._run_robot(
                f"{key}:2", robot_id, part_id or "", recipe, self.ctx.clock.now(), 2
            )
        rec = self._record_of(base, recipe, outcome, attempt)
        alert = None
        if not rec.ok:
            alert = (
                "interrupted"
                if rec.error_code == ErrorCode.INTERRUPTED
                else ("nok_hold" if recipe.on_nok == "hold" else "nok")
            )
        await self._finish(job, rec, alert)

    async def _run_robot(
        self, key: str, robot_id: str, part_id: str, recipe: Recipe, started: datetime, attempt: int
    ) -> JobOutcome:
        spec = JobSpec(
            job_key=key,
            station_id=self.station.id,
            robot_id=robot_id,
            part_id=part_id,
            program_no=recipe.program_no,
            task=recipe.task,
            fasteners=recipe.fasteners,
            takt_s=recipe.takt_s,
            seed=_seed(key),
            difficulty=recipe.difficulty,
        )
        outcome = await self.ctx.dispatcher.run(spec, self.ctx.job_timeout_s)
        # A simulated robot answers faster than its cycle: the job ends when its cycle
        # time has passed on the cell's clock, so records and the PLC see line timing.
        await self.ctx.clock.sleep_until(started + timedelta(milliseconds=outcome.cycle_time_ms))
        return outcome

    async def _await_robot(self) -> str:
        """The robot serving the station, holding the station while there is none."""
        while True:
            robot_id = await asyncio.to_thread(self.db.robot)
            if robot_id is None:
                await self.set_state(PackML.HELD, "no robot assigned to the station")
            elif not await self.ctx.dispatcher.alive(robot_id):
                await self.set_state(
                    PackML.HELD,
                    f"robot {robot_id}'s worker is offline or the broker is unreachable",
                )
            else:
                if self.state is PackML.HELD:
                    await self.set_state(PackML.UNHOLDING, f"robot {robot_id} available")
                return robot_id
            await asyncio.sleep(self.ctx.poll_s)

    async def _hold_for_technician(self, reason: str) -> None:
        await self.set_state(PackML.HELD, reason)
        self.ctx.count("holds")
        # An alert still in the outbox cannot be cleared yet: stay held until it is written.
        while self.ctx.recorder.pending() or await asyncio.to_thread(
            self.db.open_alerts, HOLDING_ALERTS
        ):
            await asyncio.sleep(self.ctx.poll_s)
        await self.set_state(PackML.UNHOLDING, "alert cleared by a technician")

    def _input_problem(self, job: PlcJob, recipe: Recipe | None) -> tuple[ErrorCode, str] | None:
        problems = {p.value for p in job.problems}
        if "part_id_empty" in problems:
            return ErrorCode.EMPTY_PART_ID, "PLC sent an empty PartId"
        if any(p.startswith("part_id") for p in problems):
            return (
                ErrorCode.INVALID_PART_ID,
                f"PLC sent an unusable PartId ({', '.join(sorted(problems))}): {job.raw_part_id!r}",
            )
        if any(p.startswith("program_no") for p in problems):
            return (
                ErrorCode.UNKNOWN_PROGRAM,
                f"PLC sent an unusable ProgramNo: {job.raw_program_no!r}",
            )
        if recipe is None:
            known = ", ".join(str(r.program_no) for r in self.station.recipes)
            return (
                ErrorCode.UNKNOWN_PROGRAM,
                f"ProgramNo {job.program_no} has no recipe at {self.station.id} (known: {known})",
            )
        return None

    def _nok(self, base: dict[str, object], code: ErrorCode, detail: str) -> JobRecord:
        return JobRecord(
            **base,
            ended_at=self.ctx.clock.now(),
            cycle_time_ms=0,  # type: ignore[arg-type]
            ok=False,
            error_code=int(code),
            detail=detail,
        )

    def _record_of(
        self, base: dict[str, object], recipe: Recipe, outcome: JobOutcome, attempt: int
    ) -> JobRecord:
        return JobRecord(
            **base,  # type: ignore[arg-type]
            ended_at=self.ctx.clock.now(),
            cycle_time_ms=outcome.cycle_time_ms,
            ok=outcome.outcome.value == "ok" and outcome.error_code == 0,
            error_code=outcome.error_code,
            robot_id=outcome.robot_id,
            task=recipe.task.value,
            recipe_id=self.ctx.recipe_ids.get((self.station.id, recipe.program_no)),
            policy_version=outcome.policy_version,
            detail=outcome.detail,
            fasteners=outcome.fasteners,
            attempt=attempt,
        )

    async def _finish(self, job: PlcJob, rec: JobRecord, alert: str | None) -> None:
        """Make the result durable, then publish it; hold the station if the alert says so."""
        where = await asyncio.to_thread(self.ctx.recorder.record, rec, alert)
        self.ctx.count("ok" if rec.ok else "nok")
        self.ctx.count(f"recorded_{where}")
        await self._publish(
            job,
            PlcResult(
                result=RESULT_OK if rec.ok else RESULT_NOK,
                error_code=rec.error_code,
                cycle_time_ms=rec.cycle_time_ms,
            ),
        )
        if alert in HOLDING_ALERTS:
            await self._hold_for_technician(
                f"job {rec.job_seq} NOK ({alert}): waiting for a technician"
            )
            await self.set_state(PackML.IDLE, "ready")

    async def _publish(self, job: PlcJob, result: PlcResult) -> None:
        await self.channel.publish_result(job, result)
        await self.set_state(PackML.COMPLETE, f"job {job.job_seq} result published")
        if not await self.channel.wait_result_ack(job, self.ctx.result_ack_timeout_s):
            log.warning(
                "station %s: PLC did not latch result %s in %.0f s",
                self.station.id,
                job.job_seq,
                self.ctx.result_ack_timeout_s,
            )
        await self.set_state(PackML.IDLE, "ready")


def _result_of(known: Known) -> PlcResult:
    return PlcResult(
        result=RESULT_OK if known.ok else RESULT_NOK,
        error_code=known.error_code,
        cycle_time_ms=known.cycle_time_ms,
    )
