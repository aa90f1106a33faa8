"""Alerts (andons): raised by the cell, acknowledged, reworked and cleared by technicians.

Every step keeps its time and author so that time to acknowledge and time to repair can
be reported. Steps out of order raise ``AlertRefused`` saying what to do first.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cell.errors import Refused
from cell.record import models as m
from cell.record.outcomes import Rework

__all__ = [
    "AlertRefused",
    "Rework",
    "acknowledge",
    "clear",
    "closed_alerts",
    "open_alerts",
    "record_rework",
]


class AlertRefused(Refused):
    """The step is not allowed now; the message says why."""


def open_alerts(session: Session, station_id: str | None = None) -> list[m.Alert]:
    """Alerts not yet cleared, oldest first."""
    q = select(m.Alert).where(m.Alert.cleared_at.is_(None)).order_by(m.Alert.raised_at)
    if station_id is not None:
        q = q.where(m.Alert.station_id == station_id)
    return list(session.scalars(q))


def closed_alerts(
    session: Session,
    start: datetime,
    end: datetime,
    station_id: str | None = None,
    limit: int = 500,
) -> list[m.Alert]:
    """Alerts cleared in ``[start, end)``, the latest cleared first, at most ``limit``."""
    q = (
        select(m.Alert)
        .where(m.Alert.cleared_at >= start, m.Alert.cleared_at < end)
        .order_by(m.Alert.cleared_at.desc())
        .limit(limit)
    )
    if station_id is not None:
        q = q.where(m.Alert.station_id == station_id)
    return list(session.scalars(q))


def _get(session: Session, alert_id: int) -> m.Alert:
    alert = session.get(m.Alert, alert_id, with_for_update=True)
    if alert is None:
        raise AlertRefused(f"there is no alert {alert_id}")
    if alert.cleared_at is not None:
        raise AlertRefused(f"alert {alert_id} was cleared at {alert.cleared_at:%Y-%m-%d %H:%M:%S}")
    return alert


def acknowledge(
    session: Session, alert_id: int, *, author: str, at: datetime | None = None
) -> m.Alert:
    """Mark the alert seen by ``author`` (at ``at``, default now); repeated, a no-op."""
    alert = _get(session, alert_id)
    if alert.acknowledged_at is None:
        alert.acknowledged_at = at or datetime.now(UTC)
        alert.acknowledged_by = author
    session.commit()
    return alert


def record_rework(
    session: Session, alert_id: int, outcome: Rework, *, author: str, at: datetime | None = None
) -> m.Alert:
    """Record what was done to the alert's part; the job row carries it too."""
    alert = _get(session, alert_id)
    if alert.acknowledged_at is None:
        raise AlertRefused(f"acknowledge alert {alert_id} before recording rework")
    alert.rework = outcome.value
    alert.reworked_at = at or datetime.now(UTC)
    alert.reworked_by = author
    if alert.job_id is not None:
        job = session.get(m.Job, alert.job_id)
        if job is not None:
            job.rework = outcome.value
    session.commit()
    return alert


def clear(session: Session, alert_id: int, *, author: str, at: datetime | None = None) -> m.Alert:
    alert = _get(session, alert_id)
    if alert.acknowledged_at is None:
        raise AlertRefused(f"acknowledge alert {alert_id} before clearing it")
    if alert.job_id is not None and alert.rework is None:
        raise AlertRefused(
            f"record the rework outcome of alert {alert_id} (reworked_ok or scrapped) first"
        )
    alert.cleared_at = at or datetime.now(UTC)
    alert.cleared_by = author
    session.commit()
    return alert
