"""Station leases: which orchestrator process serves each station of a line.

One row per station in ``station_leases``. A process (its ``owner``: host:pid:random)
serves a station only while it holds the station's lease; ``fencing`` grows by one at
every change of owner, so a later holder always carries a larger number than any earlier
one. Every time is taken from PostgreSQL's clock (``clock_timestamp()``), never from the
calling process, so hosts whose clocks disagree still agree on whether a lease has
expired.

Each function is one statement on the caller's session; the caller commits (until then
the rows it touched stay locked). Rows are locked in station order, so two processes
asking for overlapping stations wait for each other instead of deadlocking.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import DateTime, Engine, Interval, case, create_engine, func, literal, or_, select
from sqlalchemy import tuple_ as tuple_of
from sqlalchemy import update as update_of
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from cell.record.models import StationLease

_L = StationLease


def _db_now() -> ColumnElement[datetime]:
    # clock_timestamp(), not now(): a statement that waited for a row lock must judge
    # expiry at the moment it looks, not when its transaction began.
    return func.clock_timestamp(type_=DateTime(timezone=True))


def _stamp() -> ColumnElement[datetime]:
    """The statement's start: one value however often a statement asks for it."""
    return func.statement_timestamp(type_=DateTime(timezone=True))


def _until(lease_s: float) -> ColumnElement[datetime]:
    return _db_now() + literal(timedelta(seconds=lease_s), Interval())


def _matching(owner: str, held: Mapping[str, int]) -> ColumnElement[bool]:
    """Rows still ``owner``'s with the fencing number it was given."""
    pairs = [(sid, fencing) for sid, fencing in sorted(held.items())]
    return (_L.owner == owner) & tuple_of(_L.station_id, _L.fencing).in_(pairs)


def acquire(
    session: Session, owner: str, station_ids: Iterable[str], lease_s: float
) -> dict[str, int]:
    """Take the leases of ``station_ids`` that are free for ``owner``; station -> fencing
    of each lease ``owner`` holds afterwards among them.

    A lease is taken where no row exists yet (fencing 1), where the row has expired
    (another owner's: fencing + 1, ``acquired_at`` now), or where it is already
    ``owner``'s (renewed, fencing unchanged). A live lease of another owner is left alone.
    One statement with row locks (``INSERT ... ON CONFLICT DO UPDATE ... WHERE``): a
    contender that conflicts waits for the first to commit and then sees its row, so two
    contenders can never both win a station. Expires ``lease_s`` after PostgreSQL's now.
    """
    ids = sorted(set(station_ids))
    if not ids:
        return {}
    rows = [
        {
            "station_id": sid,
            "owner": owner,
            "fencing": 1,
            # One instant for both: two calls of clock_timestamp() differ by microseconds.
            # A new row waits for no lock, so the statement's start is the moment it looks.
            "acquired_at": _stamp(),
            "renewed_at": _stamp(),
            "expires_at": _until(lease_s),
        }
        for sid in ids
    ]
    values = insert(StationLease).values(rows)
    ours = _L.owner == values.excluded.owner
    stmt = values.on_conflict_do_update(
        index_elements=[_L.station_id],
        set_={
            "owner": values.excluded.owner,
            "fencing": case((ours, _L.fencing), else_=_L.fencing + 1),
            "acquired_at": case((ours, _L.acquired_at), else_=_db_now()),
            "renewed_at": _db_now(),
            "expires_at": _until(lease_s),
        },
        where=or_(ours, _L.expires_at <= _db_now()),
    ).returning(_L.station_id, _L.fencing)
    return {sid: fencing for sid, fencing in session.execute(stmt)}


def renew(session: Session, owner: str, held: Mapping[str, int], lease_s: float) -> dict[str, int]:
    """Push the expiry of ``owner``'s leases ``held`` (station -> fencing) to ``lease_s``
    after PostgreSQL's now; station -> fencing of those still held.

    Only rows whose owner and fencing still match are renewed: a station taken over by
    another process (owner changed, fencing grown) is missing from the answer, and its
    former holder must stop serving it.
    """
    if not held:
        return {}
    locked = (
        select(_L.station_id)
        .where(_matching(owner, held))
        .order_by(_L.station_id)
        .with_for_update()
    )
    stmt = (
        update_of(_L)
        .where(_L.station_id.in_(locked.scalar_subquery()), _matching(owner, held))
        .values(renewed_at=_db_now(), expires_at=_until(lease_s))
        .returning(_L.station_id, _L.fencing)
        .execution_options(synchronize_session=False)
    )
    return {sid: fencing for sid, fencing in session.execute(stmt)}


def release(session: Session, owner: str, station_ids: Iterable[str]) -> list[str]:
    """End ``owner``'s leases among ``station_ids`` now, so a standby takes the stations
    over at once instead of after the lease time; the stations released.

    For a clean shutdown, called only after the process has stopped writing to the
    stations' PLCs. An owner names one process and the fencing number changes only with
    the owner, so every row still ``owner``'s is the one it took; a lease already taken
    over is left alone.
    """
    ids = sorted(set(station_ids))
    if not ids:
        return []
    mine = (_L.owner == owner) & _L.station_id.in_(ids)
    locked = select(_L.station_id).where(mine).order_by(_L.station_id).with_for_update()
    stmt = (
        update_of(_L)
        .where(_L.station_id.in_(locked.scalar_subquery()), mine)
        .values(expires_at=func.least(_L.expires_at, _db_now()))
        .returning(_L.station_id)
        .execution_options(synchronize_session=False)
    )
    return sorted(session.scalars(stmt))


@dataclass(frozen=True)
class Lease:
    """One station's lease as read, with PostgreSQL's clock at the time of reading."""

    station_id: str
    owner: str
    fencing: int
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime
    now: datetime

    @property
    def expired(self) -> bool:
        return self.expires_at <= self.now

    @property
    def renewed_ago_s(self) -> float:
        return (self.now - self.renewed_at).total_seconds()

    @property
    def expires_in_s(self) -> float:
        """Seconds until the lease expires; negative once it has."""
        return (self.expires_at - self.now).total_seconds()


def station_leases(session: Session) -> list[Lease]:
    """Every station's lease by station id, each with PostgreSQL's clock at the read."""
    now = session.scalar(select(_db_now()))
    assert now is not None
    rows = session.scalars(select(StationLease).order_by(StationLease.station_id))
    return [
        Lease(r.station_id, r.owner, r.fencing, r.acquired_at, r.renewed_at, r.expires_at, now)
        for r in rows
    ]


def lease_engine(url: str, lease_s: float) -> Engine:
    """An engine of its own for one process's lease calls: renewals never queue behind
    the station loops' work for a pooled connection, and a connect or a statement gives
    up within ``lease_s`` (a renewal that late is of no use: the lease is lost anyway)."""
    limit_ms = max(1, int(lease_s * 1000))
    return create_engine(
        url,
        pool_size=2,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": max(1, math.ceil(lease_s)),
            "options": f"-c statement_timeout={limit_ms} -c lock_timeout={limit_ms}",
        },
    )
