"""A job's torque-angle traces, one per fastener, with the windows it was judged against
(for the part page's plots)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cell.record import models as m
from cell.record.trace import unpack_trace


@dataclass(frozen=True)
class FastenerTrace:
    side: str
    position: int
    ok: bool
    error_code: int
    torque_nm: float
    angle_deg: float
    torque_min_nm: float
    torque_max_nm: float
    angle_min_deg: float
    angle_max_deg: float
    angle: list[float]  # the curve, empty when none was stored (most OK fasteners)
    torque: list[float]


@dataclass(frozen=True)
class JobTraces:
    job_id: int
    station_id: str
    job_seq: int
    part_id: str | None
    ok: bool
    fasteners: list[FastenerTrace]


def job_traces(session: Session, job_id: int) -> JobTraces | None:
    """The fasteners of job ``job_id`` with their curves (None: no such job)."""
    job = session.get(m.Job, job_id)
    if job is None:
        return None
    rows = session.scalars(
        select(m.FastenerResult)
        .where(m.FastenerResult.job_id == job_id)
        .order_by(m.FastenerResult.side, m.FastenerResult.position)
    )
    fasteners = []
    for f in rows:
        angle, torque = unpack_trace(f.trace or b"")
        fasteners.append(
            FastenerTrace(
                side=f.side,
                position=f.position,
                ok=f.ok,
                error_code=f.error_code,
                torque_nm=f.torque_nm,
                angle_deg=f.angle_deg,
                torque_min_nm=f.torque_min_nm,
                torque_max_nm=f.torque_max_nm,
                angle_min_deg=f.angle_min_deg,
                angle_max_deg=f.angle_max_deg,
                angle=[round(float(a), 2) for a in angle],
                torque=[round(float(t), 3) for t in torque],
            )
        )
    return JobTraces(job.id, job.station_id, job.job_seq, job.part_id, job.ok, fasteners)
