"""One station's loop: PLC job -> recipe -> assigned robot -> result on record -> PLC.

The invariants of the handshake live here: a result is durable (PostgreSQL or the local
outbox) before ``ResultSeq`` moves, and ``ResultSeq`` moves (``Busy`` drops) only when the
robot is provably not working on the job: its result is in, it was revoked before a robot
took it, it stopped and reported, or its claim expired (see ``cell.line.dispatch``). A
job already on record is answered from the record, never run again; a job the cell had
accepted before a restart is re-attached through its fence, never run blindly.

While no robot serves the station, or its robot's worker is offline, the station is Held
and the PLC's job waits unacknowledged. A NOK job whose recipe says ``hold``, and any
interrupted job, holds the station after its result is published until a technician has
cleared the alert. A job the PLC gives up (a new JobSeq before the result) is revoked or
stopped at once, recorded with its own outcome, and the new job is served meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from cell.config import PartIdPolicy, Recipe, Station
from cell.line.attempts import Attempts, Ran
from cell.line.clock import Clock
from cell.line.dispatch import Dispatcher
from cell.line.drafts import JobDraft
from cell.line.durability import Known, Recorder, RecordUnavailable
from cell.line.input_checks import part_id_problem, program_problem
from cell.line.rollout_arm import StationRouting
from cell.line.station_io import HOLDING_ALERTS, StationDb
from cell.line.telemetry import LiveState, Started, Telemetry
from cell.packml import PackML, path
from cell.record.jobs import JobRecord
from mes_bridge.channel import PlcLiveness
from mes_bridge.errors import JobNotCurrent
from mes_bridge.jobs import PlcJob, PlcResult
from mes_bridge.session import StationChannel
from robot.jobs import ErrorCode

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
    part_ids: PartIdPolicy = field(default_factory=PartIdPolicy)  # the line's, what it takes
    job_timeout_s: float = 300.0
    result_ack_timeout_s: float = 30.0
    poll_s: float = 0.25  # wall seconds between checks while Held
    counters: dict[str, int] = field(default_factory=dict)
    telemetry: Telemetry = field(default_factory=Telemetry)  # live view and metrics
    robot_at: dict[str, str] = field(default_factory=dict)  # robot -> station of its last job
    home_robots: dict[str, str] = field(default_factory=dict)  # station -> robot, line config
    draining: bool = False  # stopping: finish the running job, take no new one

    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1


def _alert_kind(rec: JobRecord, recipe: Recipe) -> str | None:
    """The alert a recorded job raises: none when OK, else by its error and recipe."""
    if rec.ok:
        return None
    if rec.error_code == ErrorCode.INTERRUPTED:
        return "interrupted"
    return "nok_hold" if recipe.on_nok == "hold" else "nok"


class StationLoop:
    """Serves one station's PLC channel until cancelled."""

    def __init__(self, station: Station, channel: StationChannel, ctx: CellContext) -> None:
        self.station = station
        self.channel = channel
        self.ctx = ctx
        self.db = StationDb(ctx.sessions, station.id, ctx.home_robots.get(station.id))
        self.state = PackML.UNDEFINED
        self.busy = False
        self.plc_stale = False
        self._state_lock = asyncio.Lock()
        self.live = LiveState()
        routing = StationRouting(ctx.sessions, station.id, lambda: ctx.recorder.online)
        self.attempts = Attempts(
            ctx.dispatcher, station.id, ctx.job_timeout_s, self._await_robot, routing
        )
        self._abandoned: set[asyncio.Task[None]] = set()  # jobs the PLC gave up, finishing

    async def run(self) -> None:
        """Serve jobs until cancelled, or until ``ctx.draining`` after the running job."""
        self.state = PackML.STOPPED
        await self.set_state(PackML.IDLE, "orchestrator started")
        watcher = asyncio.create_task(self._watch_plc(), name=f"plc-watch-{self.station.id}")
        try:
            while not self.ctx.draining:
                job = await self.channel.next_job()
                self.live.seen = time.monotonic()
                if self.ctx.draining:
                    break  # not acknowledged: the PLC's job waits for the next start
                self.busy = True
                try:
                    await self._serve(job)
                finally:
                    self.busy = False
                    self.live.running = None
        finally:
            watcher.cancel()
            for task in self._abandoned:
                task.cancel()
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
            except RecordUnavailable as exc:
                # Nothing known to place the job by until the database answers: it waits
                # unacknowledged, and the station says why.
                if delay == 1.0:
                    log.warning("station %s: %s; the job waits", self.station.id, exc)
                await self.set_state(PackML.HELD, "database unreachable: the job waits for it")
                await asyncio.sleep(delay)
                delay = min(2 * delay, 5.0)
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
            if PackML.HELD in (state, self.state):  # holds are what a person looks for
                log.info("station %s: %s (%s)", self.station.id, state.name.lower(), reason)
            self.state = state
            self.ctx.telemetry.moved(self.live, state, reason)
            await asyncio.to_thread(self.db.state_events, route, reason, self.ctx.clock.now())
            await self.channel.set_cell_state(int(state))

    async def handle(self, job: PlcJob) -> None:
        """Answer one PLC job: from the record if it is already there, else by the robot."""
        while self.plc_stale:  # a PLC whose program is not running gets no answer
            await self.set_state(PackML.HELD, "PLC heartbeat stale")
            await asyncio.sleep(self.ctx.poll_s)
        refused = part_id_problem(job, self.ctx.part_ids)
        part_id = None if refused else job.part_id  # a refused PartId is never on record
        decision = await asyncio.to_thread(
            self.ctx.recorder.decide, self.station.id, job.job_seq, part_id, job.counter_reset
        )
        if decision.known is not None:
            # Already on record: answer from the record (a repeat or a resync).
            self.ctx.count("republished")
            await self._accept(job)
            await self._publish(job, _result_of(decision.known))
            return
        draft = JobDraft(
            self.station.id,
            decision.epoch,
            job.job_seq,
            part_id,
            job.program_no,
            self.ctx.clock.now(),
        )
        recipe = self.station.recipe(job.program_no)
        problem = refused or program_problem(job, recipe, self.station)
        if problem is not None:
            await self._accept(job)
            await self.set_state(PackML.EXECUTE, f"job {job.job_seq}: rejecting bad input")
            await self._finish(job, draft.nok(*problem, self.ctx.clock.now()), "bad_input")
            return
        assert recipe is not None
        await self._execute(job, draft, recipe)

    async def _execute(self, job: PlcJob, draft: JobDraft, recipe: Recipe) -> None:
        """Run an accepted job on the robot (once more if the recipe says so), or, for a
        job the cell accepted before a restart, re-attach to it on the robot that took it.
        If the PLC gives the job up meanwhile, it is finished and recorded aside."""
        robot_id = await self.attempts.holder(draft.key) or await self._await_robot()
        draft = draft.restarted(self.ctx.clock.now())
        await self._accept(job)
        came_from = self.ctx.robot_at.get(robot_id)
        if came_from is not None and came_from != self.station.id:
            # The robot walks over as part of its job; the worker paces the walk.
            await self.set_state(PackML.STARTING, f"robot {robot_id} walking from {came_from}")
        self.ctx.robot_at[robot_id] = self.station.id
        self.live.running = Started(
            job.job_seq, draft.part_id, recipe.program_no, robot_id, recipe.takt_s, draft.started_at
        )
        await self.set_state(PackML.EXECUTE, f"job {job.job_seq} on robot {robot_id}")
        work = asyncio.create_task(
            self.attempts.run(
                draft.key,
                draft.part_id or "",
                recipe,
                robot_id,
                lambda: not self.channel.current(job),
            )
        )
        gone = asyncio.create_task(self.channel.wait_not_current(job))
        try:
            await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            work.cancel()
            raise
        finally:
            gone.cancel()
            with contextlib.suppress(BaseException):
                await gone
        if not work.done():
            # The PLC moved on; the attempt sees it too and revokes or stops the robot.
            log.warning("station %s: the PLC gave job %s up mid-run", self.station.id, job.job_seq)
            self.ctx.count("abandoned")
            task = asyncio.create_task(self._record_abandoned(work, draft, recipe))
            self._abandoned.add(task)
            task.add_done_callback(self._abandoned.discard)
            return
        rec = self._record_of(draft, recipe, work.result())
        await self._finish(job, rec, _alert_kind(rec, recipe))

    def _record_of(self, draft: JobDraft, recipe: Recipe, ran: Ran) -> JobRecord:
        return draft.result(
            ran.outcome,
            task=recipe.task.value,
            recipe_id=self.ctx.recipe_ids.get((self.station.id, recipe.program_no)),
            attempt=ran.attempt,
            ended_at=self.ctx.clock.now(),
            earlier=ran.earlier,
        )

    async def _record_abandoned(
        self, work: asyncio.Task[Ran], draft: JobDraft, recipe: Recipe
    ) -> None:
        """Wait until the robot is done with a job the PLC gave up and record what it did
        (no result goes to the PLC); a part that left with work on it raises an alert."""
        ran = await work
        outcome, rec = ran.outcome, self._record_of(draft, recipe, ran)
        touched = bool(outcome.fasteners) or outcome.cycle_time_ms > 0
        alert = "abandoned" if touched and not rec.ok else None
        where = await asyncio.to_thread(self.ctx.recorder.record, rec, alert)
        self.attempts.recorded(rec, where)
        _log_job(rec, where, "abandoned")

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

    async def _finish(self, job: PlcJob, rec: JobRecord, alert: str | None) -> None:
        """Make the result durable, then publish it; hold the station if the alert says so."""
        t0, self.live.running = time.monotonic(), None
        where = await asyncio.to_thread(self.ctx.recorder.record, rec, alert)
        self.attempts.recorded(rec, where)
        self.ctx.telemetry.recorded(self.station.id, rec.ok, rec.attempt, time.monotonic() - t0)
        self.ctx.count("ok" if rec.ok else "nok")
        self.ctx.count(f"recorded_{where}")
        await self._publish(
            job,
            PlcResult(
                result=RESULT_OK if rec.ok else RESULT_NOK,
                error_code=rec.error_code,
                cycle_time_ms=rec.cycle_time_ms,
            ),
            since=t0,
        )
        _log_job(rec, where, "published")
        if alert in HOLDING_ALERTS:
            await self._hold_for_technician(
                f"job {rec.job_seq} NOK ({alert}): waiting for a technician"
            )
            await self.set_state(PackML.IDLE, "ready")

    async def _accept(self, job: PlcJob) -> None:
        await self.channel.accept(job)
        self.ctx.telemetry.acknowledged(self.station.id, time.monotonic() - self.live.seen)

    async def _publish(self, job: PlcJob, result: PlcResult, since: float | None = None) -> None:
        """Publish ``result``; ``since``: when it was in hand (monotonic), for the metric."""
        t0 = time.monotonic() if since is None else since
        await self.channel.publish_result(job, result)
        self.ctx.telemetry.published(self.station.id, time.monotonic() - t0)
        await self.set_state(PackML.COMPLETE, f"job {job.job_seq} result published")
        if not await self.channel.wait_result_ack(job, self.ctx.result_ack_timeout_s):
            log.warning(
                "station %s: PLC did not latch result %s in %.0f s",
                self.station.id,
                job.job_seq,
                self.ctx.result_ack_timeout_s,
            )
        await self.set_state(PackML.IDLE, "ready")


def _log_job(rec: JobRecord, where: str, what: str) -> None:
    """One line per published job for a person to grep (``station=ST20``); its values are
    the record's fields for a log collector. The part is quoted: codes carry spaces."""
    fields = {
        "station": rec.station_id,
        "job_seq": rec.job_seq,
        "part": json.dumps(rec.part_id, ensure_ascii=False),
        "outcome": "OK" if rec.ok else "NOK",
        "error_code": rec.error_code,
        "cycle_time_ms": rec.cycle_time_ms,
        "attempt": rec.attempt,
        "recorded": where,
    }
    text = " ".join(f"{k}={v}" for k, v in fields.items())
    log.info("job %s %s", what, text, extra=fields | {"part": rec.part_id})


def _result_of(known: Known) -> PlcResult:
    return PlcResult(
        result=RESULT_OK if known.ok else RESULT_NOK,
        error_code=known.error_code,
        cycle_time_ms=known.cycle_time_ms,
    )
