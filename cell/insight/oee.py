"""Availability from PackML state events, and OEE per station and shift (ISO 22400).

A station is down in the states ``analytics_state_down`` names (the held, suspended,
stopped and aborted families); the production cycle (idle, starting, execute,
completing, complete, resetting) is running. A state lasts until the station's next
event; the latest one lasts until now. Time before a station's first event is unknown
and is not counted.

- planned busy time (PBT): the known time of the shift. With no shift on record in the
  window, nobody planned the station's time, so PBT is the known time the station was in
  service: all but the states ``analytics_state_off`` names (a cell shut down between
  runs is not a station down);
- availability = running time / PBT;
- performance (effectiveness) = parts (jobs) x takt / running time;
- quality ratio = parts OK at the first attempt / parts;
- OEE = availability x performance x quality.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cell.insight.window import Window, split
from cell.insight.yields import JOBS_PARTS, SHIFT_HOURS

# Seconds per station and state in [a, b) from raw events: the event before ``a``
# opens the window, each state lasts to the next event, the last to min(b, now).
RAW_STATES = """
  SELECT station_id, state,
         extract(epoch FROM least(coalesce(next_at, least(CAST(:{b} AS timestamptz), now())),
                                  CAST(:{b} AS timestamptz))
                       - greatest(at, CAST(:{a} AS timestamptz))) AS seconds
  FROM (
    SELECT station_id, state, at,
           lead(at) OVER (PARTITION BY station_id ORDER BY at, id) AS next_at
    FROM (
      SELECT station_id, state, at, id FROM cell_state_events
      WHERE at >= :{a} AND at < :{b} {{where}}
      UNION ALL
      SELECT p.station_id, p.state, p.at, p.id FROM stations s CROSS JOIN LATERAL (
        SELECT station_id, state, at, id FROM cell_state_events
        WHERE station_id = s.id AND at < :{a} ORDER BY at DESC, id DESC LIMIT 1) p
      WHERE :{a} < :{b} {{where_s}}
    ) ev
  ) sp
"""

# The latest event of each station and how much of [fs, fe) its open span covers.
OPEN_SPAN = """
  SELECT s.id AS station_id, e.state, e.at FROM stations s CROSS JOIN LATERAL (
    SELECT state, at FROM cell_state_events WHERE station_id = s.id
    ORDER BY at DESC, id DESC LIMIT 1) e
  WHERE true {where_s}
"""


def _where(station: str | None) -> dict[str, str]:
    if station is None:
        return {"where": "", "where_s": ""}
    return {"where": "AND station_id = :station", "where_s": "AND s.id = :station"}


def state_seconds(
    session: Session, window: Window, *, station: str | None = None
) -> dict[str, dict[str, float]]:
    """Seconds per station and state in ``window`` (states as stored, lower case)."""
    sp = split(window, "hour")
    w = _where(station)
    raw = " UNION ALL ".join(
        RAW_STATES.format(a=a, b=b).format(**w) for a, b in (("e1a", "e1b"), ("e2a", "e2b"))
    )
    where_r = "AND station_id = :station" if station is not None else ""
    sql = f"""
    SELECT station_id, state, sum(seconds) FROM (
      SELECT station_id, state, seconds FROM rollup_state_hourly
      WHERE bucket >= :fs AND bucket < :fe {where_r}
      UNION ALL
      SELECT station_id, state,
             extract(epoch FROM least(CAST(:fe AS timestamptz), now())
                                - greatest(at, CAST(:fs AS timestamptz)))
      FROM ({OPEN_SPAN.format(**w)}) o
      UNION ALL {raw}
    ) p WHERE seconds > 0 GROUP BY 1, 2
    """
    out: dict[str, dict[str, float]] = {}
    for st, state, secs in session.execute(text(sql), sp.params() | {"station": station}):
        out.setdefault(st, {})[state] = float(secs)
    return out


def _states_where(session: Session, states: list[str], predicate: str) -> set[str]:
    """The states among ``states`` for which the SQL function ``predicate`` holds."""
    if not states:
        return set()
    rows = session.execute(
        text(f"SELECT s FROM unnest(CAST(:s AS text[])) s WHERE {predicate}(s)"), {"s": states}
    )
    return {r[0] for r in rows}


def down_states(session: Session, states: list[str]) -> set[str]:
    """The states among ``states`` in which a station is down."""
    return _states_where(session, states, "analytics_state_down")


def availability(
    session: Session, window: Window, *, station: str | None = None
) -> dict[str, tuple[float, float]]:
    """Per station: (known seconds, running seconds) in ``window``."""
    secs = state_seconds(session, window, station=station)
    down = down_states(session, sorted({s for v in secs.values() for s in v}))
    return {
        st: (sum(v.values()), sum(x for s, x in v.items() if s not in down))
        for st, v in secs.items()
    }


@dataclass(frozen=True)
class OeeRow:
    shift: str
    starts_at: datetime
    ends_at: datetime
    station_id: str
    planned_s: float
    running_s: float
    jobs: int
    parts: int
    first_pass_ok: int
    takt_s_sum: float
    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None


# The shifts that start in [start, end) and have begun: id, label, start, end.
_SHIFTS_BEGUN = """SELECT id, name || ' ' || to_char(starts_at AT TIME ZONE 'UTC',
                    'YYYY-MM-DD HH24:MI'), starts_at, ends_at FROM shifts
                    WHERE starts_at >= :start AND starts_at < :end AND starts_at < now()
                    ORDER BY starts_at"""

# SHIFT_HOURS over the span of the shifts asked for, not over the caller's window.
_SPAN_HOURS = SHIFT_HOURS.replace(":start", ":span_a").replace(":end", ":span_b")


# The label of the rows ``oee_by_shift`` gives for a window with no shift on record.
NO_SHIFT = "(no shift)"


def oee_by_shift(session: Session, window: Window, *, station: str | None = None) -> list[OeeRow]:
    """OEE per station for every shift that starts in ``window`` and has begun; with no
    such shift, one row per station over the whole window, labelled ``NO_SHIFT``, whose
    planned busy time is the time the station was in service."""
    params = {"start": window.start, "end": window.end, "station": station}
    shifts = session.execute(text(_SHIFTS_BEGUN), params).all()
    if not shifts:
        return window_oee(session, window, station=station, label=NO_SHIFT, planned=False)
    span = Window(shifts[0][2], max(s[3] for s in shifts))
    p = split(span, "hour").params() | params | {"span_a": span.start, "span_b": span.end}
    jobs = _jobs_per_shift(session, p, station)
    states = _seconds_per_shift(session, p, station)
    stations = sorted({k[1] for k in jobs} | {k[1] for k in states})
    out = []
    for sid, label, a, b in shifts:
        for st in stations:
            if (sid, st) not in jobs and (sid, st) not in states:
                continue
            out.append(
                _oee_row(
                    label,
                    a,
                    b,
                    st,
                    jobs.get((sid, st), (0, 0, 0, 0)),
                    states.get((sid, st), (0.0, 0.0)),
                )
            )
    return out


def window_oee(
    session: Session,
    window: Window,
    *,
    station: str | None = None,
    label: str = "",
    planned: bool = True,
) -> list[OeeRow]:
    """OEE per station over ``window``, every row labelled ``label``.

    ``planned``: the window is planned busy time (a shift, or a window a supervisor asks a
    report for), so all its known time counts; otherwise the time a station was shut down
    is left out of its planned busy time.
    """
    secs = state_seconds(session, window, station=station)
    seen = sorted({s for v in secs.values() for s in v})
    down = down_states(session, seen)
    off = set() if planned else _states_where(session, seen, "analytics_state_off")
    seconds = {
        st: (
            sum(x for s, x in v.items() if s not in off),
            sum(x for s, x in v.items() if s not in down),
        )
        for st, v in secs.items()
    }
    where_j = "AND station_id = :station" if station is not None else ""
    jobs = {
        r[0]: r[1:]
        for r in session.execute(
            text(f"""
        SELECT p.station_id, sum(p.jobs), sum(p.jobs), sum(p.first_pass_ok), sum(p.takt_ms_sum)
        FROM ({JOBS_PARTS.format(where=where_j)}) p GROUP BY 1"""),
            split(window, "hour").params() | {"station": station},
        )
    }
    return [
        _oee_row(
            label,
            window.start,
            window.end,
            st,
            jobs.get(st, (0, 0, 0, 0)),
            seconds.get(st, (0.0, 0.0)),
        )
        for st in sorted(set(seconds) | set(jobs))
    ]


def _jobs_per_shift(
    session: Session, p: dict[str, object], station: str | None
) -> dict[tuple[int, str], Sequence[Any]]:
    """Per (shift id, station): jobs, parts, first-pass OK, takt ms sum (SQL sums, may be
    None)."""
    where_j = "AND station_id = :station" if station is not None else ""
    return {
        (r[0], r[1]): r[2:]
        for r in session.execute(
            text(f"""
        SELECT sm.shift_id, p.station_id, sum(p.jobs), sum(p.jobs), sum(p.first_pass_ok),
               sum(p.takt_ms_sum)
        FROM ({JOBS_PARTS.format(where=where_j)}) p JOIN ({_SPAN_HOURS}) sm ON sm.bucket = p.bucket
        GROUP BY 1, 2"""),
            p,
        )
    }


def _seconds_per_shift(
    session: Session, p: dict[str, object], station: str | None
) -> dict[tuple[int, str], tuple[float, float]]:
    """Per (shift id, station): (known seconds, running seconds), from the hourly state
    rollup plus each station's open span cut into hours up to now."""
    w = _where(station)
    where_j = "AND station_id = :station" if station is not None else ""
    return {
        (r[0], r[1]): (float(r[2]), float(r[3]))
        for r in session.execute(
            text(f"""
        SELECT sm.shift_id, x.station_id, sum(x.seconds),
               coalesce(sum(x.seconds) FILTER (WHERE NOT analytics_state_down(x.state)), 0)
        FROM (
          SELECT bucket, station_id, state, seconds FROM rollup_state_hourly
          WHERE bucket >= :span_a AND bucket < :span_b {where_j}
          UNION ALL
          SELECT h, o.station_id, o.state,
                 extract(epoch FROM least(h + interval '1 hour', now()) - greatest(o.at, h))
          FROM ({OPEN_SPAN.format(**w)}) o CROSS JOIN LATERAL generate_series(
               greatest(date_trunc('hour', o.at, 'UTC'), CAST(:span_a AS timestamptz)),
               least(now(), CAST(:span_b AS timestamptz)) - interval '1 microsecond',
               interval '1 hour') AS h
        ) x JOIN ({_SPAN_HOURS}) sm ON sm.bucket = x.bucket
        WHERE x.seconds > 0 GROUP BY 1, 2"""),
            p,
        )
    }


def _oee_row(
    label: str,
    starts_at: datetime,
    ends_at: datetime,
    station_id: str,
    jobs: Sequence[Any],
    seconds: tuple[float, float],
) -> OeeRow:
    """One station's shift from its job sums and its (known, running) seconds."""
    n, parts, fp, takt_ms = (int(v or 0) for v in jobs)
    planned, running = seconds
    running = running or 0.0
    avail = running / planned if planned > 0 else None
    perf = (takt_ms / 1000.0) / running if running > 0 else None
    qual = fp / parts if parts else None
    oee = (
        avail * perf * qual if avail is not None and perf is not None and qual is not None else None
    )
    return OeeRow(
        label,
        starts_at,
        ends_at,
        station_id,
        planned,
        running,
        n,
        parts,
        fp,
        takt_ms / 1000.0,
        avail,
        perf,
        qual,
        oee,
    )
