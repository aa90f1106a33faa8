"""Independent readings of a demo's record, written from the raw tables for the tests.

Nothing here calls the product's queries: the figures a test compares against are
computed in Python from ``cell_state_events`` and ``jobs`` with the definitions a plant
engineer would use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text

# PackML's production cycle; every other state (held, suspended, stopped, aborted and
# their transitions) is a station down.
RUNNING = {"idle", "starting", "execute", "completing", "complete", "resetting"}


def later_than(conn: Connection, now: datetime) -> dict[str, datetime]:
    """Every timestamp column of the schema whose latest value is after ``now``."""
    cols = conn.execute(
        text("""
        SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = 'public' AND data_type = 'timestamp with time zone'""")
    ).all()
    out = {}
    for table, col in cols:
        latest = conn.execute(text(f'SELECT max("{col}") FROM "{table}"')).scalar()
        if latest is not None and latest > now:
            out[f"{table}.{col}"] = latest
    return out


@dataclass(frozen=True)
class StationFigures:
    known_s: float
    running_s: float
    held_s: float
    parts: int
    first_pass_ok: int
    takt_s: float

    @property
    def availability(self) -> float:
        return self.running_s / self.known_s

    @property
    def oee(self) -> float:
        performance = self.parts * self.takt_s / self.running_s
        return self.availability * performance * (self.first_pass_ok / self.parts)


def station_figures(
    conn: Connection, station: str, takt_s: float, a: datetime, b: datetime, now: datetime
) -> StationFigures:
    """A station's known, running and held seconds in ``[a, b)`` (each event's state lasts
    to the station's next event, the latest to ``now``; nothing before the first event is
    known), and its parts and first-pass OK parts from the jobs that ended in it."""
    events = conn.execute(
        text("SELECT state, at FROM cell_state_events WHERE station_id = :s ORDER BY at, id"),
        {"s": station},
    ).all()
    seconds: dict[str, float] = {}
    for (state, at), nxt in zip(events, [*events[1:], (None, now)], strict=True):
        lo, hi = max(at, a), min(nxt[1], b)
        if hi > lo:
            seconds[state] = seconds.get(state, 0.0) + (hi - lo).total_seconds()
    parts, first_pass = conn.execute(
        text("""
        SELECT count(*), count(*) FILTER (WHERE ok AND attempt = 1) FROM jobs
        WHERE station_id = :s AND ended_at >= :a AND ended_at < :b"""),
        {"s": station, "a": a, "b": b},
    ).one()
    return StationFigures(
        known_s=sum(seconds.values()),
        running_s=sum(v for k, v in seconds.items() if k in RUNNING),
        held_s=seconds.get("held", 0.0),
        parts=parts,
        first_pass_ok=first_pass,
        takt_s=takt_s,
    )
