"""Parts seen by the line: one row per part with its route and final state.

A part is listed when one of its jobs ended inside the window (at a station, when one is
named); its row then tells its whole record, jobs before and after the window included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cell.insight.genealogy import PartState, Visit, part_state
from cell.insight.params import EARLIEST, LATEST, StationId
from cell.record import models as m

_AGO = re.compile(r"(\d+(?:\.\d+)?)\s*([mhdw])")
_UNIT = {
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
MAX_SPAN = timedelta(days=3660)


def span(text: str) -> timedelta | None:
    """``text`` as a span back from now (``30m``, ``8h``, ``2d``, ``1.5w``); None if it is
    not written as one."""
    ago = _AGO.fullmatch(text.strip())
    return None if ago is None else float(ago.group(1)) * _UNIT[ago.group(2)]


class PartsParams(BaseModel):
    """What ``parts`` is asked, from the CLI or the API.

    ``since``: an ISO 8601 time (UTC unless an offset is given; the CLI reads it in the
    line's time zone first) or a span back from now such as ``30m``, ``8h``, ``2d``,
    ``1w``; ``nok``: only parts with a NOK job in the window (at ``station``, when
    named); ``limit``: the most recent parts, this many.
    """

    model_config = ConfigDict(extra="forbid")

    since: datetime | timedelta = timedelta(days=7)
    station: StationId | None = None
    nok: bool = False
    limit: int = Field(default=100, ge=1, le=10_000)

    @field_validator("since", mode="before")
    @classmethod
    def _time_or_span(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        if (ago := span(value)) is not None:
            return ago
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"{value!r} is neither a time (2026-03-01T06:00) nor a span back from now "
                "(30m, 8h, 2d, 1w)"
            ) from None

    @field_validator("since")
    @classmethod
    def _bounded(cls, value: datetime | timedelta) -> datetime | timedelta:
        if isinstance(value, timedelta) and not timedelta(0) <= value <= MAX_SPAN:
            raise ValueError(f"a span back from now is from 0 to {MAX_SPAN.days} days")
        aware = value.replace(tzinfo=value.tzinfo or UTC) if isinstance(value, datetime) else None
        if aware is not None and not EARLIEST <= aware < LATEST:
            # Nothing is on record outside these; the window's arithmetic would overflow.
            raise ValueError(f"a time from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d}")
        return value

    def start(self, now: datetime | None = None) -> datetime:
        """The window's start: ``since`` as a time (naive: UTC) or that long before now."""
        if isinstance(self.since, timedelta):
            return (now or datetime.now(UTC)) - self.since
        return self.since if self.since.tzinfo else self.since.replace(tzinfo=UTC)


@dataclass(frozen=True)
class PartRow:
    """One part: first job's start, last job's end, the stations of its jobs in time
    order, how many jobs it had and how many ended NOK, and its final state."""

    part_id: str
    first_seen: datetime
    last_seen: datetime
    stations: tuple[str, ...]
    jobs: int
    nok_jobs: int
    state: PartState


class _Job(NamedTuple):
    station_id: str
    started_at: datetime
    ended_at: datetime
    ok: bool
    rework: str | None


def parts_seen(
    session: Session,
    since: datetime,
    *,
    station: str | None = None,
    nok: bool = False,
    limit: int = 100,
) -> list[PartRow]:
    """The ``limit`` parts last seen most recently among those with a job ended at or
    after ``since`` (at ``station``; NOK, with ``nok``), oldest first."""
    seen = (
        select(m.Job.part_id)
        .where(m.Job.part_id.is_not(None), m.Job.ended_at >= since)
        .group_by(m.Job.part_id)
        .order_by(func.max(m.Job.ended_at).desc(), m.Job.part_id)
        .limit(limit)
    )
    if station is not None:
        seen = seen.where(m.Job.station_id == station)
    if nok:
        seen = seen.having(func.bool_or(~m.Job.ok))
    ids = list(session.scalars(seen))
    jobs = session.execute(
        select(
            m.Job.part_id,
            m.Job.station_id,
            m.Job.started_at,
            m.Job.ended_at,
            m.Job.ok,
            m.Job.rework,
        )
        .where(m.Job.part_id.in_(ids))
        .order_by(m.Job.part_id, m.Job.started_at, m.Job.id)
    ).all()
    by_part: dict[str, list[_Job]] = {}
    for part_id, station_id, started_at, ended_at, ok, rework in jobs:
        # part_id is never NULL here: only listed ids were asked for.
        by_part.setdefault(part_id or "", []).append(
            _Job(station_id, started_at, ended_at, ok, rework)
        )
    rows = [_row(part_id, route) for part_id, route in by_part.items()]
    return sorted(rows, key=lambda r: (r.first_seen, r.part_id))


def _row(part_id: str, route: list[_Job]) -> PartRow:
    """A part's row from its jobs in time order."""
    return PartRow(
        part_id,
        route[0].started_at,
        max(job.ended_at for job in route),
        tuple(job.station_id for job in route),
        len(route),
        sum(not job.ok for job in route),
        part_state(Visit(job.station_id, job.ok, job.rework) for job in route),
    )
