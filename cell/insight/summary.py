"""Read-side queries over the production record, each returning typed rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Integer, case, func, select
from sqlalchemy.orm import Session

from cell.record import models as m


@dataclass(frozen=True)
class StationSummary:
    station_id: str
    jobs: int
    ok: int
    nok: int
    retried: int  # jobs that needed a second attempt (OK or not)
    first_pass_yield: float | None  # OK at the first attempt / jobs
    cycle_time_median_ms: float | None
    # What ran the jobs: ``expert`` or policy checkpoint versions, sorted.
    drivers: tuple[str, ...] = ()


def station_summary(
    session: Session, since: datetime | None = None, until: datetime | None = None
) -> list[StationSummary]:
    """Per station: jobs, OK, NOK, retried, first-pass yield, median cycle time and what ran the
    jobs (``Job.policy_version``), of the jobs that ended in ``[since, until]``."""
    first_pass = func.sum(case((m.Job.ok & (m.Job.attempt == 1), 1), else_=0))
    q = (
        select(
            m.Job.station_id,
            func.count(),
            func.sum(m.Job.ok.cast(Integer)),
            first_pass,
            func.sum(case((m.Job.attempt > 1, 1), else_=0)),
            func.percentile_cont(0.5).within_group(m.Job.cycle_time_ms),
            func.array_agg(m.Job.policy_version.distinct()),
        )
        .group_by(m.Job.station_id)
        .order_by(m.Job.station_id)
    )
    if since is not None:
        q = q.where(m.Job.ended_at >= since)
    if until is not None:
        q = q.where(m.Job.ended_at <= until)
    out = []
    for station_id, jobs, ok, fp, retried, median, drivers in session.execute(q):
        out.append(
            StationSummary(
                station_id=station_id,
                jobs=jobs,
                ok=int(ok or 0),
                nok=jobs - int(ok or 0),
                retried=int(retried or 0),
                first_pass_yield=(int(fp or 0) / jobs) if jobs else None,
                cycle_time_median_ms=float(median) if median is not None else None,
                drivers=tuple(sorted(d for d in drivers or () if d)),
            )
        )
    return out
