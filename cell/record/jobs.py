"""Recording jobs: idempotent on (station, epoch, JobSeq), one transaction per job.

The counter epoch of a station advances when the PLC's JobSeq goes backwards (a cold
restart or a counter reset): ``resolve_epoch`` applies the rule of ``cell.record.epochs``
to what is already recorded, so the decision survives a restart of the orchestrator.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from cell.record import models as m
from cell.record.epochs import EpochView, place_job
from cell.record.trace import pack_trace
from robot.jobs import EpisodeRef, FastenerResult


class AttemptEpisode(BaseModel):
    """An earlier attempt's episode of a retried job (the last attempt's is the job's)."""

    model_config = ConfigDict(extra="forbid")

    attempt: int = Field(ge=1)
    ok: bool
    policy_version: str | None = None
    episode: EpisodeRef


class JobRecord(BaseModel):
    """Everything recorded about one PLC job; JSON-serialisable for the local outbox."""

    model_config = ConfigDict(extra="forbid")

    station_id: str
    epoch: int = Field(ge=0)
    job_seq: int = Field(ge=0)
    part_id: str | None
    program_no: int
    recipe_id: int | None = None
    robot_id: str | None = None
    task: str | None = None
    policy_version: str | None = None
    started_at: datetime
    ended_at: datetime
    cycle_time_ms: int = Field(ge=0)
    ok: bool
    error_code: int = 0
    attempt: int = Field(default=1, ge=1)
    detail: str = ""
    fasteners: list[FastenerResult] = Field(default_factory=list)
    # The job's episode in the robot's episode store, where the robot kept one.
    episode: EpisodeRef | None = None
    earlier_episodes: list[AttemptEpisode] = Field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.station_id}:{self.epoch}:{self.job_seq}"


@dataclass(frozen=True)
class Recorded:
    """The job's row; ``created`` False for a key already on record, and then ``differs``
    names what the record holds otherwise (empty: a harmless repeat)."""

    job_id: int
    created: bool
    differs: tuple[str, ...] = ()


# What makes two results of one job key different jobs rather than a repeat.
_MATTERS = ("part_id", "program_no", "ok", "error_code")


def differences(row: m.Job, rec: JobRecord) -> tuple[str, ...]:
    """The fields that matter (part, program, outcome) in which ``rec`` differs from ``row``."""
    return tuple(f for f in _MATTERS if getattr(row, f) != getattr(rec, f))


def record_job(session: Session, rec: JobRecord, *, commit: bool = True) -> Recorded:
    """Insert ``rec`` with its fasteners and its episode's row unless its key is already
    recorded (the episode row commits with the job: also when replayed from the outbox).

    A repeat (same key) changes nothing and returns the existing row's id with
    ``created=False``: the first recording of a job is the one of record; ``differs``
    says whether the repeat carries another part or outcome (see ``quarantine``). With
    ``commit=False`` the caller commits (to add rows that belong to the same job).
    """
    if rec.part_id is not None:
        session.execute(insert(m.Part).values(part_id=rec.part_id).on_conflict_do_nothing())
    values = rec.model_dump(exclude={"fasteners", "episode", "earlier_episodes"})
    job_id = session.execute(
        insert(m.Job)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["station_id", "epoch", "job_seq"])
        .returning(m.Job.id)
    ).scalar_one_or_none()
    if job_id is None:
        session.rollback()
        existing = find_job(session, rec.station_id, rec.epoch, rec.job_seq)
        assert existing is not None  # the conflict says it exists
        return Recorded(existing.id, created=False, differs=differences(existing, rec))
    if rec.fasteners:
        session.execute(
            insert(m.FastenerResult),
            [
                {
                    "job_id": job_id,
                    "side": f.side.value,
                    "position": f.position,
                    "torque_nm": f.torque_nm,
                    "angle_deg": f.angle_deg,
                    "torque_min_nm": f.torque_min_nm,
                    "torque_max_nm": f.torque_max_nm,
                    "angle_min_deg": f.angle_min_deg,
                    "angle_max_deg": f.angle_max_deg,
                    "ok": f.ok,
                    "error_code": f.error_code,
                    "trace": pack_trace(f.trace_angle_deg, f.trace_torque_nm),
                }
                for f in rec.fasteners
            ],
        )
    _record_episodes(session, job_id, rec)
    if commit:
        session.commit()
    return Recorded(job_id, created=True)


def _record_episodes(session: Session, job_id: int, rec: JobRecord) -> None:
    """One row per attempt's episode: the earlier attempts' and the job's own."""
    own = []
    if rec.episode is not None:
        own = [
            AttemptEpisode(
                attempt=rec.attempt,
                ok=rec.ok,
                policy_version=rec.policy_version,
                episode=rec.episode,
            )
        ]
    for e in [*rec.earlier_episodes, *own]:
        session.execute(
            insert(m.Episode).values(
                job_id=job_id,
                attempt=e.attempt,
                path=e.episode.path,
                frames=e.episode.frames,
                bytes=e.episode.bytes,
                ok=e.ok,
                policy_version=e.policy_version,
            )
        )


def quarantine(
    session: Session, rec: JobRecord, job_id: int, differs: tuple[str, ...], at: datetime
) -> m.Alert | None:
    """Keep ``rec``, which met a different job ``job_id`` under its key, with both versions
    as JSON, and raise a ``replay_conflict`` alert naming them; the caller commits.

    The same entry quarantined again (a replay interrupted and repeated) is stored once:
    None then, else the new alert.
    """
    row = session.get(m.Job, job_id)
    assert row is not None
    replayed = rec.model_dump(mode="json")
    entry_hash = hashlib.sha256(json.dumps(replayed, sort_keys=True).encode()).hexdigest()
    conflict_id = session.execute(
        insert(m.ReplayConflict)
        .values(
            station_id=rec.station_id,
            epoch=rec.epoch,
            job_seq=rec.job_seq,
            job_id=job_id,
            differs=list(differs),
            recorded=_row_json(row),
            replayed=replayed,
            entry_hash=entry_hash,
        )
        .on_conflict_do_nothing()
        .returning(m.ReplayConflict.id)
    ).scalar_one_or_none()
    if conflict_id is None:
        return None
    alert = m.Alert(
        station_id=rec.station_id,
        part_id=rec.part_id,
        kind="replay_conflict",
        error_code=rec.error_code,
        message=(
            f"{rec.station_id} JobSeq {rec.job_seq} (epoch {rec.epoch}): a result for part "
            f"{rec.part_id or '(none)'} ({'OK' if rec.ok else 'NOK'} {rec.error_code}) met the "
            f"record's part {row.part_id or '(none)'} ({'OK' if row.ok else 'NOK'} "
            f"{row.error_code}); differs in {', '.join(differs)}. Kept as replay conflict "
            f"{conflict_id}, not recorded: check which part was worked on."
        ),
        raised_at=at,
    )
    session.add(alert)
    session.flush()
    session.get_one(m.ReplayConflict, conflict_id).alert_id = alert.id
    return alert


def _row_json(row: m.Job) -> dict[str, object]:
    """A job row's columns as JSON values (times in ISO 8601)."""
    out: dict[str, object] = {}
    for col in m.Job.__table__.columns:
        value = getattr(row, col.key)
        out[col.key] = value.isoformat() if isinstance(value, datetime) else value
    return out


def find_job(session: Session, station_id: str, epoch: int, job_seq: int) -> m.Job | None:
    return session.execute(
        select(m.Job).where(
            m.Job.station_id == station_id, m.Job.epoch == epoch, m.Job.job_seq == job_seq
        )
    ).scalar_one_or_none()


@dataclass(frozen=True)
class EpochDecision:
    epoch: int
    existing: m.Job | None


def resolve_epoch(
    session: Session,
    station_id: str,
    job_seq: int,
    part_id: str | None,
    *,
    counter_reset: bool = False,
) -> EpochDecision:
    """The counter epoch of a PLC job from what is recorded (``cell.record.epochs``), and
    its row if it repeats a recorded job."""
    current, top = session.execute(
        select(func.max(m.Job.epoch), func.max(m.Job.job_seq)).where(
            m.Job.station_id == station_id,
            m.Job.epoch
            == select(func.max(m.Job.epoch))
            .where(m.Job.station_id == station_id)
            .scalar_subquery(),
        )
    ).one()
    existing = None if current is None else find_job(session, station_id, current, job_seq)
    view = EpochView(
        current,
        top or 0,
        same_seq_found=existing is not None,
        same_seq_part=existing.part_id if existing is not None else None,
    )
    placed = place_job(view, job_seq, part_id, counter_reset=counter_reset)
    return EpochDecision(placed.epoch, existing if placed.repeat else None)


def last_job_seqs(session: Session) -> dict[str, int]:
    """Each station's highest recorded JobSeq in its current counter epoch."""
    current = (
        select(m.Job.station_id, func.max(m.Job.epoch).label("epoch"))
        .group_by(m.Job.station_id)
        .subquery()
    )
    rows = session.execute(
        select(m.Job.station_id, func.max(m.Job.job_seq))
        .join(
            current, (m.Job.station_id == current.c.station_id) & (m.Job.epoch == current.c.epoch)
        )
        .group_by(m.Job.station_id)
    )
    return {sid: int(seq) for sid, seq in rows}


def recipe_hash(spec: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
