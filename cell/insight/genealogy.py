"""Part genealogy: everything recorded about one ``PartId``: its route through the
stations, each job's outcome, fasteners, alerts and rework, and the part's final state
(``part_state``, the one rule for it)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from cell.config import PART_ID_MAX_LEN
from cell.insight.pareto import error_name
from cell.record import models as m


@dataclass(frozen=True)
class FastenerView:
    side: str
    position: int
    torque_nm: float
    angle_deg: float
    torque_min_nm: float
    torque_max_nm: float
    angle_min_deg: float
    angle_max_deg: float
    ok: bool
    error_code: int
    trace_samples: int


@dataclass(frozen=True)
class AlertView:
    id: int
    kind: str
    message: str
    raised_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    rework: str | None
    reworked_by: str | None
    cleared_at: datetime | None
    cleared_by: str | None


@dataclass(frozen=True)
class EpisodeView:
    """The job's episode in the episode store (its last attempt's): where, how long, how
    big, and whether retention has deleted its files."""

    path: str
    attempt: int
    frames: int
    bytes: int
    pruned: bool


@dataclass(frozen=True)
class JobView:
    job_id: int
    station_id: str
    epoch: int
    job_seq: int
    robot_id: str | None
    task: str | None
    policy_version: str | None
    started_at: datetime
    ended_at: datetime
    cycle_time_ms: int
    ok: bool
    error_code: int
    error_name: str
    attempt: int
    rework: str | None
    fasteners: tuple[FastenerView, ...]
    alerts: tuple[AlertView, ...]
    episode: EpisodeView | None = None  # labelled by ``rework`` once a technician gives it


class PartState(StrEnum):
    """Where a part stands after its route so far."""

    OK = "ok"
    NOK = "nok"  # NOK at a station, no rework recorded (yet)
    REWORKED = "reworked"  # NOK somewhere, reworked OK by a technician
    SCRAPPED = "scrapped"


@dataclass(frozen=True)
class Visit:
    """One job of a part, as far as its final state is concerned."""

    station_id: str
    ok: bool
    rework: str | None


def part_state(visits: Iterable[Visit]) -> PartState:
    """A part's final state from its jobs in time order.

    The last job at each station stands for that station (a part sent through a station
    again is judged by the latest pass). Scrapped anywhere: scrapped; else NOK without
    rework anywhere: NOK; else reworked OK anywhere: reworked; else OK.
    """
    last = {v.station_id: v for v in visits}
    outcomes = {None if v.ok else (v.rework or "nok") for v in last.values()}
    if "scrapped" in outcomes:
        return PartState.SCRAPPED
    if "nok" in outcomes:
        return PartState.NOK
    if "reworked_ok" in outcomes:
        return PartState.REWORKED
    return PartState.OK


@dataclass(frozen=True)
class PartHistory:
    """A part's record. ``first_seen``/``last_seen``: its first job's start and its last
    job's end on the line's clock (when it was first recorded, if it has no job);
    ``route``: the stations of its jobs in time order."""

    part_id: str
    first_seen: datetime
    last_seen: datetime
    state: PartState
    route: tuple[str, ...]
    jobs: tuple[JobView, ...]


def part_history(session: Session, part_id: str) -> PartHistory | None:
    """The part's jobs in time order, each with its fasteners and alerts; None if unknown
    (as is any id the record cannot hold: too long, or with a NUL)."""
    if len(part_id) > PART_ID_MAX_LEN or "\x00" in part_id:
        return None
    part = session.get(m.Part, part_id)
    if part is None:
        return None
    jobs = session.scalars(
        select(m.Job).where(m.Job.part_id == part_id).order_by(m.Job.started_at, m.Job.id)
    ).all()
    ids = [j.id for j in jobs]
    fasteners = _fasteners_by_job(session, ids)
    alerts = _alerts_by_job(session, ids)
    episodes = _episodes_by_job(session, ids)
    return PartHistory(
        part.part_id,
        jobs[0].started_at if jobs else part.first_seen,
        max((j.ended_at for j in jobs), default=part.first_seen),
        part_state(Visit(j.station_id, j.ok, j.rework) for j in jobs),
        tuple(j.station_id for j in jobs),
        tuple(
            _job_view(
                j, tuple(fasteners.get(j.id, ())), tuple(alerts.get(j.id, ())), episodes.get(j.id)
            )
            for j in jobs
        ),
    )


def _fasteners_by_job(session: Session, ids: list[int]) -> dict[int, list[FastenerView]]:
    """The jobs' fasteners, per job id, by side then position."""
    fasteners: dict[int, list[FastenerView]] = {}
    for f in session.scalars(
        select(m.FastenerResult)
        .where(m.FastenerResult.job_id.in_(ids))
        .order_by(m.FastenerResult.side, m.FastenerResult.position)
    ):
        fasteners.setdefault(f.job_id, []).append(
            FastenerView(
                f.side,
                f.position,
                f.torque_nm,
                f.angle_deg,
                f.torque_min_nm,
                f.torque_max_nm,
                f.angle_min_deg,
                f.angle_max_deg,
                f.ok,
                f.error_code,
                # One sample is a float32 (angle, torque) pair: 8 bytes.
                len(f.trace) // 8,
            )
        )
    return fasteners


def _episodes_by_job(session: Session, ids: list[int]) -> dict[int, EpisodeView]:
    """Each job's episode: its last attempt's."""
    out: dict[int, EpisodeView] = {}
    for e in session.scalars(
        select(m.Episode).where(m.Episode.job_id.in_(ids)).order_by(m.Episode.attempt)
    ):
        out[e.job_id] = EpisodeView(e.path, e.attempt, e.frames, e.bytes, e.pruned_at is not None)
    return out


def _alerts_by_job(session: Session, ids: list[int]) -> dict[int, list[AlertView]]:
    """The jobs' alerts, per job id, in the order they were raised."""
    alerts: dict[int, list[AlertView]] = {}
    for a in session.scalars(
        select(m.Alert).where(m.Alert.job_id.in_(ids)).order_by(m.Alert.raised_at)
    ):
        alerts.setdefault(a.job_id or 0, []).append(
            AlertView(
                a.id,
                a.kind,
                a.message,
                a.raised_at,
                a.acknowledged_at,
                a.acknowledged_by,
                a.rework,
                a.reworked_by,
                a.cleared_at,
                a.cleared_by,
            )
        )
    return alerts


def _job_view(
    j: m.Job,
    fasteners: tuple[FastenerView, ...],
    alerts: tuple[AlertView, ...],
    episode: EpisodeView | None,
) -> JobView:
    return JobView(
        j.id,
        j.station_id,
        j.epoch,
        j.job_seq,
        j.robot_id,
        j.task,
        j.policy_version,
        j.started_at,
        j.ended_at,
        j.cycle_time_ms,
        j.ok,
        j.error_code,
        error_name(j.error_code) if j.error_code else "",
        j.attempt,
        j.rework,
        fasteners,
        alerts,
        episode,
    )
