"""Where results go: PostgreSQL when it answers, the local outbox when it does not.

Order is kept: while the outbox holds anything, new results queue behind it, and
``replay`` drains it oldest first once the database answers again. Epoch decisions fall
back on what this process last saw per station (kept in the outbox file, so it survives
a restart), plus the outbox, while the database is down, so a repeat is still recognised
and a counter reset still opens a new epoch.

A recorder built ``online=False`` treats the database as down until ``go_online`` (the
orchestrator calls it once the schema is at head and the line is synced), so nothing is
written to a database that PostgreSQL's return has not yet made ready.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from cell.line.outbox import Outbox
from cell.record import models as m
from cell.record.epochs import EpochView, place_job
from cell.record.jobs import JobRecord, quarantine, record_job, resolve_epoch
from robot.jobs import ErrorCode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Known:
    """A job already on record (database or outbox), enough to answer the PLC again."""

    ok: bool
    error_code: int
    cycle_time_ms: int


@dataclass(frozen=True)
class Decision:
    epoch: int
    known: Known | None


@dataclass(frozen=True)
class _Last:
    epoch: int
    job_seq: int
    part_id: str | None
    known: Known


def unreachable(exc: Exception) -> bool:
    """Whether a database error means "cannot reach the server" rather than a bug."""
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class Recorder:
    """Thread-safe; called from station loops through ``asyncio.to_thread``."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        outbox: Outbox,
        *,
        recipe_ids: dict[tuple[str, int], int] | None = None,
        online: bool = True,
    ) -> None:
        """``recipe_ids`` ((station, ProgramNo) -> recipe row, filled by the caller once the
        line is synced) completes results recorded offline without their recipe."""
        self.sessions = sessions
        self.outbox = outbox
        self.recipe_ids = recipe_ids if recipe_ids is not None else {}
        self._lock = threading.Lock()
        self._online = threading.Event()
        if online:
            self._online.set()
        self._last: dict[str, _Last] = {
            sid: _last_of(rec) for sid, rec in outbox.remembered().items()
        }

    @property
    def online(self) -> bool:
        return self._online.is_set()

    def go_online(self) -> None:
        """The database is ready for writes (schema at head, line synced)."""
        self._online.set()

    def known_job_seqs(self) -> dict[str, int]:
        """Each station's last JobSeq known without the database (memory and outbox)."""
        with self._lock:
            seqs = {sid: last.job_seq for sid, last in self._last.items()}
            # While the outbox holds anything, its newest entry is the station's last job.
            for entry in self.outbox.entries():
                seqs[entry.record.station_id] = entry.record.job_seq
        return seqs

    def decide(
        self, station_id: str, job_seq: int, part_id: str | None, counter_reset: bool = False
    ) -> Decision:
        """The epoch of a PLC job and, if it is already recorded, its result."""
        with self._lock:
            if self.online and len(self.outbox) == 0:
                try:
                    with self.sessions() as s:
                        d = resolve_epoch(
                            s, station_id, job_seq, part_id, counter_reset=counter_reset
                        )
                    known = None
                    if d.existing is not None:
                        known = Known(
                            d.existing.ok, d.existing.error_code, d.existing.cycle_time_ms
                        )
                    return Decision(d.epoch, known)
                except (OperationalError, DBAPIError) as exc:
                    if not unreachable(exc):
                        raise
                    log.warning(
                        "database unreachable; deciding %s job %s from memory", station_id, job_seq
                    )
            return self._decide_offline(station_id, job_seq, part_id, counter_reset)

    def _decide_offline(
        self, station_id: str, job_seq: int, part_id: str | None, counter_reset: bool
    ) -> Decision:
        last = self._last.get(station_id)
        queued = self.outbox.latest(station_id)
        if queued is not None:
            last = _last_of(queued)
        if last is None:
            # Nothing known of the station and no database: the job cannot be placed in
            # an epoch safely, so it waits (unacknowledged) until the database answers.
            raise RecordUnavailable(
                f"{station_id}: database unreachable and no earlier job of the station "
                f"known here to place JobSeq {job_seq} in a counter epoch"
            )
        in_outbox = self.outbox.find(station_id, last.epoch, job_seq)
        same: Known | None = None
        same_part: str | None = None
        if in_outbox is not None:
            same = Known(in_outbox.ok, in_outbox.error_code, in_outbox.cycle_time_ms)
            same_part = in_outbox.part_id
        elif job_seq == last.job_seq:
            same, same_part = last.known, last.part_id
        view = EpochView(last.epoch, last.job_seq, same is not None, same_part)
        placed = place_job(view, job_seq, part_id, counter_reset=counter_reset)
        return Decision(placed.epoch, same if placed.repeat else None)

    def record(self, rec: JobRecord, alert: str | None) -> str:
        """Make ``rec`` durable: "db" if committed to PostgreSQL, "outbox" otherwise."""
        with self._lock:
            self._last[rec.station_id] = _last_of(rec)
            where = "outbox"
            if self.online and len(self.outbox) == 0:
                try:
                    self._write(rec, alert)
                    where = "db"
                except (OperationalError, DBAPIError) as exc:
                    if not unreachable(exc):
                        raise
                    log.warning("database unreachable; %s goes to the outbox", rec.key)
            if where == "outbox":
                self.outbox.put(rec, alert)
            self.outbox.remember(rec)  # durable now: a restart may place jobs after it
            return where

    def replay(self) -> int:
        """Write queued results to the database oldest first; returns how many went.

        Stops at the first entry the database does not take (it is down again); does
        nothing before ``go_online``. A result recorded without its recipe row (the
        database was down when the line was synced) gets it from ``recipe_ids``.
        """
        done = 0
        if not self.online:
            return 0
        with self._lock:
            for entry in self.outbox.entries():
                try:
                    self._write(self._with_recipe(entry.record), entry.alert)
                except (OperationalError, DBAPIError) as exc:
                    if not unreachable(exc):
                        raise
                    break
                self.outbox.remove(entry.seq)
                done += 1
        if done:
            log.info("replayed %d results from the outbox", done)
        return done

    def pending(self) -> int:
        return len(self.outbox)

    def _with_recipe(self, rec: JobRecord) -> JobRecord:
        """``rec`` with its recipe row if it ran a recipe (it has a task) and lacks it."""
        if rec.recipe_id is not None or rec.task is None:
            return rec
        recipe_id = self.recipe_ids.get((rec.station_id, rec.program_no))
        return rec if recipe_id is None else rec.model_copy(update={"recipe_id": recipe_id})

    def _write(self, rec: JobRecord, alert: str | None) -> None:
        """Record ``rec`` with its alert; a different result already under its key is kept
        in quarantine with an alert for a person, never dropped."""
        with self.sessions() as s:
            # The job and its alert commit together: a crash cannot leave one without the other.
            recorded = record_job(s, rec, commit=False)
            if recorded.differs:
                raised = quarantine(s, rec, recorded.job_id, recorded.differs, rec.ended_at)
                if raised is not None:
                    log.warning("replay conflict: %s", raised.message)
            elif alert is not None and recorded.created:
                s.add(
                    m.Alert(
                        station_id=rec.station_id,
                        job_id=recorded.job_id,
                        part_id=rec.part_id,
                        kind=alert,
                        error_code=rec.error_code,
                        message=alert_message(rec),
                        raised_at=rec.ended_at,
                    )
                )
            s.commit()


def _last_of(rec: JobRecord) -> _Last:
    return _Last(
        rec.epoch, rec.job_seq, rec.part_id, Known(rec.ok, rec.error_code, rec.cycle_time_ms)
    )


class RecordUnavailable(RuntimeError):
    """Neither the database nor what the outbox file remembers can place a job safely."""


def alert_message(rec: JobRecord) -> str:
    """What a technician reads on the andon: station, job, part, failure, bad fasteners."""
    try:
        name = ErrorCode(rec.error_code).name.lower()
    except ValueError:
        name = f"error {rec.error_code}"
    part = rec.part_id or "(no part id)"
    bad = [f"{f.side.value} {f.position}" for f in rec.fasteners if not f.ok]
    where = f"; fasteners NOK: {', '.join(bad)}" if bad else ""
    return f"{rec.station_id} job {rec.job_seq} part {part}: {name}{where}. {rec.detail}".strip()
