"""Stations, robots, recipes and assignments in the record, seeded from the line config,
and the roster as people read it.

Stations never own robots: the open assignment row (``valid_to IS NULL``) of a robot says
which station it serves now, and closed rows keep the history with author and reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from cell.config import LineConfig, Recipe
from cell.record import models as m
from cell.record.jobs import recipe_hash

SYSTEM_AUTHOR = "system"


def sync_line(
    session: Session, line: LineConfig, *, at: datetime | None = None
) -> dict[tuple[str, int], int]:
    """Upsert the line's stations, robots and recipes; open initial assignments.

    A robot with no open assignment is assigned to its ``home_station``, from ``at``
    (default: now; a simulated run gives its clock's start). Recipes are
    stored by content hash, so a changed recipe gets a new row and old jobs keep theirs.
    Returns the recipe row id for each (station, ProgramNo) of the current config.
    """
    for st in line.stations:
        values = {
            "id": st.id,
            "line": line.line,
            "name": st.name,
            "tasks": sorted(t.value for t in st.tasks),
        }
        session.execute(
            insert(m.Station)
            .values(**values)
            .on_conflict_do_update(index_elements=["id"], set_=values)
        )
    for rb in line.robots:
        values = {"id": rb.id, "name": rb.name, "skills": [s.value for s in rb.skills]}
        session.execute(
            insert(m.Robot)
            .values(**values)
            .on_conflict_do_update(index_elements=["id"], set_=values)
        )
    recipe_ids: dict[tuple[str, int], int] = {}
    for st in line.stations:
        for rc in st.recipes:
            recipe_ids[(st.id, rc.program_no)] = _upsert_recipe(session, st.id, rc)
    for rb in line.robots:
        if rb.home_station is None or current_station(session, rb.id, any_state=True):
            continue
        row = m.Assignment(
            robot_id=rb.id,
            station_id=rb.home_station,
            author=SYSTEM_AUTHOR,
            reason="home station from line config",
        )
        if at is not None:  # else the database's now()
            row.valid_from = at
        session.add(row)
    session.commit()
    return recipe_ids


def _upsert_recipe(session: Session, station_id: str, rc: Recipe) -> int:
    spec = rc.model_dump(mode="json")
    digest = recipe_hash(spec)
    session.execute(
        insert(m.Recipe)
        .values(
            station_id=station_id,
            program_no=rc.program_no,
            name=rc.name,
            task=rc.task.value,
            takt_s=rc.takt_s,
            spec=spec,
            content_hash=digest,
        )
        .on_conflict_do_nothing()
    )
    return session.execute(
        select(m.Recipe.id).where(
            m.Recipe.station_id == station_id,
            m.Recipe.program_no == rc.program_no,
            m.Recipe.content_hash == digest,
        )
    ).scalar_one()


def current_station(session: Session, robot_id: str, *, any_state: bool = False) -> bool:
    """Whether the robot has an open assignment (to a station, or any if ``any_state``)."""
    q = select(m.Assignment.id).where(
        m.Assignment.robot_id == robot_id, m.Assignment.valid_to.is_(None)
    )
    if not any_state:
        q = q.where(m.Assignment.station_id.is_not(None))
    return session.execute(q).first() is not None


def robot_for_station(session: Session, station_id: str) -> str | None:
    """The robot serving ``station_id`` now, or None when no robot serves it."""
    return session.execute(
        select(m.Assignment.robot_id)
        .where(m.Assignment.station_id == station_id, m.Assignment.valid_to.is_(None))
        .order_by(m.Assignment.valid_from.desc())
        .limit(1)
    ).scalar_one_or_none()


@dataclass(frozen=True)
class RosterEntry:
    robot_id: str
    station_id: str | None  # None: out of service (maintenance) or unassigned
    since: datetime | None
    author: str | None
    reason: str | None
    skills: tuple[str, ...]


def roster(session: Session) -> list[RosterEntry]:
    """Every robot with its open assignment (or none), ordered by robot id."""
    rows = session.execute(
        select(m.Robot, m.Assignment)
        .outerjoin(
            m.Assignment, (m.Assignment.robot_id == m.Robot.id) & m.Assignment.valid_to.is_(None)
        )
        .order_by(m.Robot.id)
    ).all()
    return [
        RosterEntry(
            robot_id=r.id,
            station_id=a.station_id if a else None,
            since=a.valid_from if a else None,
            author=a.author if a else None,
            reason=a.reason if a else None,
            skills=tuple(r.skills),
        )
        for r, a in rows
    ]
