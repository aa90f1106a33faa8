"""The rules of the supervisors' roster acts: reassign, swap, maintenance.

Each act closes the robot's open assignment and opens the next one in one transaction,
with its author and reason. It takes effect at the next cycle boundary because a station
reads its robot when a job starts; a running job finishes with the robot it started with.
Refusals raise ``AssignmentRefused`` with a reason a supervisor can act on. People act
through ``cell.record.acts.Acts``, which audits each act; these functions are its rules.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cell.errors import Refused
from cell.record import models as m


class AssignmentRefused(Refused):
    """The act is not allowed; the message says why."""


def _robot(session: Session, robot_id: str) -> m.Robot:
    robot = session.get(m.Robot, robot_id, with_for_update=True)
    if robot is None:
        known = ", ".join(session.scalars(select(m.Robot.id).order_by(m.Robot.id)))
        raise AssignmentRefused(f"robot {robot_id!r} is not on this line (robots: {known})")
    return robot


def _open(session: Session, robot_id: str) -> m.Assignment | None:
    return session.execute(
        select(m.Assignment).where(
            m.Assignment.robot_id == robot_id, m.Assignment.valid_to.is_(None)
        )
    ).scalar_one_or_none()


def _check_skills(session: Session, robot: m.Robot, station_id: str) -> None:
    station = session.get(m.Station, station_id)
    if station is None:
        known = ", ".join(session.scalars(select(m.Station.id).order_by(m.Station.id)))
        raise AssignmentRefused(f"station {station_id!r} is not on this line (stations: {known})")
    lacking = sorted(set(station.tasks) - set(robot.skills))
    if lacking:
        raise AssignmentRefused(
            f"robot {robot.id} has no skill for {', '.join(lacking)} needed at {station_id} "
            f"(its skills: {', '.join(robot.skills) or 'none'})"
        )


def _move(
    session: Session, robot_id: str, station_id: str | None, author: str, reason: str, now: datetime
) -> m.Assignment:
    current = _open(session, robot_id)
    if current is not None:
        current.valid_to = now
        session.flush()  # the partial unique index allows one open row per robot
    row = m.Assignment(
        robot_id=robot_id, station_id=station_id, valid_from=now, author=author, reason=reason
    )
    session.add(row)
    return row


def _require_author(author: str, reason: str) -> None:
    if not author.strip():
        raise AssignmentRefused("an assignment change needs its author")
    if not reason.strip():
        raise AssignmentRefused("an assignment change needs a reason")


def reassign(
    session: Session,
    robot_id: str,
    station_id: str,
    *,
    author: str,
    reason: str,
    at: datetime | None = None,
) -> m.Assignment:
    """Move ``robot_id`` to ``station_id``; the station it leaves has no robot until
    another is assigned. Commits."""
    _require_author(author, reason)
    robot = _robot(session, robot_id)
    _check_skills(session, robot, station_id)
    current = _open(session, robot_id)
    if current is not None and current.station_id == station_id:
        raise AssignmentRefused(f"robot {robot_id} already serves {station_id}")
    occupant = session.execute(
        select(m.Assignment.robot_id).where(
            m.Assignment.station_id == station_id, m.Assignment.valid_to.is_(None)
        )
    ).scalar_one_or_none()
    if occupant is not None:
        raise AssignmentRefused(
            f"{station_id} is served by {occupant}: move {occupant} away first or swap them"
        )
    row = _move(session, robot_id, station_id, author, reason, at or datetime.now(UTC))
    session.commit()
    return row


def swap(
    session: Session,
    robot_a: str,
    robot_b: str,
    *,
    author: str,
    reason: str,
    at: datetime | None = None,
) -> None:
    """Exchange the stations of two robots, each checked for the other's skills. Commits."""
    _require_author(author, reason)
    a, b = _robot(session, robot_a), _robot(session, robot_b)
    open_a, open_b = _open(session, a.id), _open(session, b.id)
    st_a = open_a.station_id if open_a else None
    st_b = open_b.station_id if open_b else None
    if st_a is None or st_b is None:
        idle = robot_a if st_a is None else robot_b
        raise AssignmentRefused(f"robot {idle} serves no station; use reassign instead")
    _check_skills(session, a, st_b)
    _check_skills(session, b, st_a)
    now = at or datetime.now(UTC)
    _move(session, a.id, st_b, author, reason, now)
    _move(session, b.id, st_a, author, reason, now)
    session.commit()


def to_maintenance(
    session: Session, robot_id: str, *, author: str, reason: str, at: datetime | None = None
) -> None:
    """Take a robot out of service; its station has no robot until one is assigned."""
    _require_author(author, reason)
    _robot(session, robot_id)
    current = _open(session, robot_id)
    if current is not None and current.station_id is None:
        raise AssignmentRefused(f"robot {robot_id} is already out of service")
    _move(session, robot_id, None, author, f"maintenance: {reason}", at or datetime.now(UTC))
    session.commit()
