"""The production record: SQLAlchemy 2 models. The schema changes only through Alembic.

Times are ``timestamptz`` in UTC. A job row is one PLC job, keyed by
(station, counter epoch, JobSeq): the epoch advances when the PLC's counter goes backwards
(a cold restart), so old rows are never touched and a repeat never makes a second row.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import TextClause

from cell.config import PART_ID_MAX_LEN

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _now() -> TextClause:
    return text("now()")


class Station(Base):
    __tablename__ = "stations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    line: Mapped[str] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(String(200), default="")
    tasks: Mapped[list[str]] = mapped_column(ARRAY(String(40)), default=list)


class Robot(Base):
    __tablename__ = "robots"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    skills: Mapped[list[str]] = mapped_column(ARRAY(String(40)), default=list)


class Assignment(Base):
    """Which robot serves which station from when to when; ``valid_to`` NULL = still valid.

    ``station_id`` NULL means the robot is out of service (maintenance) for the interval.
    """

    __tablename__ = "assignments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    robot_id: Mapped[str] = mapped_column(ForeignKey("robots.id"))
    station_id: Mapped[str | None] = mapped_column(ForeignKey("stations.id"))
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    author: Mapped[str] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        Index(
            "ix_assignments_open_robot",
            "robot_id",
            unique=True,
            postgresql_where=text("valid_to IS NULL"),
        ),
        Index("ix_assignments_station_from", "station_id", "valid_from"),
    )


class Recipe(Base):
    """A recipe as it was when used; ``content_hash`` tells versions of one ProgramNo apart."""

    __tablename__ = "recipes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    program_no: Mapped[int] = mapped_column(SmallInteger)
    name: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(40))
    takt_s: Mapped[float] = mapped_column(Float)
    spec: Mapped[dict[str, object]] = mapped_column(JSONB)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())

    __table_args__ = (UniqueConstraint("station_id", "program_no", "content_hash"),)


class Part(Base):
    """A part seen by the line, under its PartId exactly as the PLC sent it (GS1 separators
    and any script included; revision 0003 widened the id from 64 characters)."""

    __tablename__ = "parts"

    part_id: Mapped[str] = mapped_column(String(PART_ID_MAX_LEN), primary_key=True)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class Job(Base):
    """One PLC job. ``part_id`` is NULL when the PLC sent no usable part id."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    epoch: Mapped[int] = mapped_column(Integer)
    job_seq: Mapped[int] = mapped_column(BigInteger)
    part_id: Mapped[str | None] = mapped_column(ForeignKey("parts.part_id"))
    program_no: Mapped[int] = mapped_column(Integer)
    recipe_id: Mapped[int | None] = mapped_column(ForeignKey("recipes.id"))
    robot_id: Mapped[str | None] = mapped_column(ForeignKey("robots.id"))
    task: Mapped[str | None] = mapped_column(String(40))
    policy_version: Mapped[str | None] = mapped_column(String(80))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cycle_time_ms: Mapped[int] = mapped_column(Integer)
    ok: Mapped[bool] = mapped_column(Boolean)
    error_code: Mapped[int] = mapped_column(Integer, default=0)
    attempt: Mapped[int] = mapped_column(SmallInteger, default=1)
    rework: Mapped[str | None] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(Text, default="")
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())

    __table_args__ = (
        UniqueConstraint("station_id", "epoch", "job_seq"),
        Index("ix_jobs_station_ended", "station_id", "ended_at"),
        Index("ix_jobs_ended", "ended_at"),
        Index("ix_jobs_part", "part_id"),
    )


class FastenerResult(Base):
    """One fastener of a job. ``trace`` packs the torque-angle curve compactly:
    little-endian float32 pairs (angle_deg, torque_nm), see ``cell.record.trace``."""

    __tablename__ = "fastener_results"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    side: Mapped[str] = mapped_column(String(8), primary_key=True)
    position: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    torque_nm: Mapped[float] = mapped_column(Float)
    angle_deg: Mapped[float] = mapped_column(Float)
    torque_min_nm: Mapped[float] = mapped_column(Float)
    torque_max_nm: Mapped[float] = mapped_column(Float)
    angle_min_deg: Mapped[float] = mapped_column(Float)
    angle_max_deg: Mapped[float] = mapped_column(Float)
    ok: Mapped[bool] = mapped_column(Boolean)
    error_code: Mapped[int] = mapped_column(Integer, default=0)
    trace: Mapped[bytes] = mapped_column(LargeBinary, default=b"")


class CellStateEvent(Base):
    """A station's PackML state transition, with its reason (availability and OEE)."""

    __tablename__ = "cell_state_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    state: Mapped[str] = mapped_column(String(20))
    state_code: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())

    __table_args__ = (Index("ix_cell_state_events_station_at", "station_id", "at"),)


class Alert(Base):
    """An andon: raised by the cell, acknowledged and cleared by a technician."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    part_id: Mapped[str | None] = mapped_column(String(PART_ID_MAX_LEN))
    kind: Mapped[str] = mapped_column(String(40))
    error_code: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(String(80))
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cleared_by: Mapped[str | None] = mapped_column(String(80))
    rework: Mapped[str | None] = mapped_column(String(20))
    reworked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reworked_by: Mapped[str | None] = mapped_column(String(80))

    __table_args__ = (
        Index("ix_alerts_open", "station_id", postgresql_where=text("cleared_at IS NULL")),
        Index("ix_alerts_raised", "raised_at"),
    )


class ReplayConflict(Base):
    """A result that met a different one under its job key (revision 0005), kept with both
    versions as JSON: ``recorded`` the row of record, ``replayed`` the entry that could not
    be recorded. ``entry_hash`` (SHA-256 of ``replayed``) makes a repeated replay of the
    same entry store it once."""

    __tablename__ = "replay_conflicts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    epoch: Mapped[int] = mapped_column(Integer)
    job_seq: Mapped[int] = mapped_column(BigInteger)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    differs: Mapped[list[str]] = mapped_column(ARRAY(String(40)))
    recorded: Mapped[dict[str, object]] = mapped_column(JSONB)
    replayed: Mapped[dict[str, object]] = mapped_column(JSONB)
    entry_hash: Mapped[str] = mapped_column(String(64))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"))
    found_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())

    __table_args__ = (UniqueConstraint("station_id", "epoch", "job_seq", "entry_hash"),)


class StationLease(Base):
    """Which orchestrator process serves a station (revision 0006); written only by
    ``cell.record.leases``. ``owner`` names the process (host:pid:random), ``fencing``
    grows by one at every change of owner, and every time is PostgreSQL's own clock, so
    hosts whose clocks disagree still agree on who holds a station. No foreign key to
    ``stations``: a process may take a lease before it has synced the line's stations."""

    __tablename__ = "station_leases"

    station_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(Text)
    fencing: Mapped[int] = mapped_column(BigInteger)
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    renewed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (CheckConstraint("fencing > 0", name="fencing_positive"),)


# Access, audit and shifts (revision 0002). Its rollup tables are read with SQL in
# cell.insight and kept by database triggers, so they have no ORM classes.

ROLES = ("viewer", "technician", "engineer", "supervisor", "admin")


class ApiUser(Base):
    """A person or script allowed to use the HTTP API, with one role."""

    __tablename__ = "api_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )

    __table_args__ = (
        CheckConstraint("role IN ({})".format(", ".join(f"'{r}'" for r in ROLES)), name="role"),
    )


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored, the token itself is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("api_users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(120), server_default="", default="")
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """One write attempted through the API: who, with which role, what, and how it ended."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("now()"))
    actor: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str] = mapped_column(String(200), server_default="", default="")
    outcome: Mapped[str] = mapped_column(String(20))  # done | refused | forbidden
    detail: Mapped[dict[str, object]] = mapped_column(JSONB, server_default="{}", default=dict)

    __table_args__ = (Index("ix_audit_log_at", "at"),)


class Shift(Base):
    """A planned production shift; whole UTC hours, never overlapping (the database checks)."""

    __tablename__ = "shifts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_shifts_starts_at", "starts_at"),)


class Rollout(Base):
    """A canary rollout of ``candidate_version`` beside ``incumbent_version`` on a station
    (revision 0007); written only by ``cell.record.rollouts``. ``state``: running,
    promoted, rolled_back or stopped; ``decided_by`` is ``system`` for the rule's decision
    or the supervisor who stopped it; ``evidence`` the rule's counts, yields, reference."""

    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    incumbent_version: Mapped[str] = mapped_column(String(80))
    candidate_version: Mapped[str] = mapped_column(String(80))
    share: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    started_by: Mapped[str] = mapped_column(String(80))
    state: Mapped[str] = mapped_column(String(20))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[dict[str, object]] = mapped_column(JSONB, server_default="{}", default=dict)

    __table_args__ = (
        CheckConstraint("share > 0 AND share < 1", name="share"),
        CheckConstraint("state IN ('running', 'promoted', 'rolled_back', 'stopped')", name="state"),
        CheckConstraint("candidate_version <> incumbent_version", name="versions_differ"),
        Index(
            "ix_rollouts_running_station",
            "station_id",
            unique=True,
            postgresql_where=text("state = 'running'"),
        ),
        Index("ix_rollouts_station_started", "station_id", "started_at"),
    )


class RolloutJob(Base):
    """The arm a job of a rollout ran on (revision 0007): ``incumbent`` or ``candidate``."""

    __tablename__ = "rollout_jobs"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    rollout_id: Mapped[int] = mapped_column(
        ForeignKey("rollouts.id", ondelete="CASCADE"), index=True
    )
    arm: Mapped[str] = mapped_column(String(10))

    __table_args__ = (CheckConstraint("arm IN ('incumbent', 'candidate')", name="arm"),)


class Episode(Base):
    """A job's episode in the episode store (revision 0008): ``path`` relative to the
    store, its control ticks and bytes, the job's outcome and policy version as recorded,
    and the attempt it was (one row per attempt kept). ``pruned_at`` is set when retention
    deleted the files; the row stays."""

    __tablename__ = "episodes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(SmallInteger, default=1)
    path: Mapped[str] = mapped_column(String(400))
    frames: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    ok: Mapped[bool] = mapped_column(Boolean)
    policy_version: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    pruned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("job_id", "attempt"),
        Index("ix_episodes_created", "created_at"),
    )
