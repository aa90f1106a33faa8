"""NOK Pareto: by error code (jobs) and by fastener position (fasteners)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from cell.insight.window import Window, split
from robot.jobs import ErrorCode


def error_name(code: int) -> str:
    try:
        return ErrorCode(code).name.lower()
    except ValueError:
        return f"error {code}"


@dataclass(frozen=True)
class ParetoRow:
    error_code: int
    name: str
    count: int
    share: float  # of all NOK in the answer
    cumulative: float


@dataclass(frozen=True)
class PositionParetoRow:
    station_id: str
    side: str
    position: int
    error_code: int
    name: str
    count: int
    share: float
    cumulative: float


def _station_clause(station: str | None, col: str = "station_id") -> str:
    return f"AND {col} = :station" if station is not None else ""


def nok_pareto(session: Session, window: Window, *, station: str | None = None) -> list[ParetoRow]:
    """NOK jobs by error code, most frequent first, with shares and cumulative shares."""
    w = _station_clause(station)
    sql = f"""
    SELECT error_code, sum(n) FROM (
      SELECT error_code, n FROM rollup_nok_daily
      WHERE day >= :ds AND day < :de {w}
      UNION ALL
      SELECT error_code, 1 FROM jobs
      WHERE NOT ok AND ((ended_at >= :e1a AND ended_at < :e1b)
                        OR (ended_at >= :e2a AND ended_at < :e2b)) {w}
    ) p GROUP BY 1 ORDER BY 2 DESC, 1
    """
    params = _day_params(window) | {"station": station}
    rows = [(int(c), int(n)) for c, n in session.execute(text(sql), params)]
    total = sum(n for _, n in rows)
    out, cum = [], 0
    for code, n in rows:
        cum += n
        out.append(ParetoRow(code, error_name(code), n, n / total, cum / total))
    return out


def fastener_pareto(
    session: Session, window: Window, *, station: str | None = None
) -> list[PositionParetoRow]:
    """NOK fasteners by station, side, position and error code, most frequent first."""
    w = _station_clause(station)
    wj = _station_clause(station, "j.station_id")
    sql = f"""
    SELECT station_id, side, position, error_code, sum(n) FROM (
      SELECT station_id, side, position, error_code, n FROM rollup_fasteners_daily
      WHERE NOT ok AND day >= :ds AND day < :de {w}
      UNION ALL
      SELECT j.station_id, f.side, f.position, f.error_code, 1
      FROM jobs j JOIN fastener_results f ON f.job_id = j.id
      WHERE NOT f.ok AND ((j.ended_at >= :e1a AND j.ended_at < :e1b)
                          OR (j.ended_at >= :e2a AND j.ended_at < :e2b)) {wj}
    ) p GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC, 1, 2, 3, 4
    """
    params = _day_params(window) | {"station": station}
    rows = [
        (s, side, int(pos), int(c), int(n))
        for s, side, pos, c, n in session.execute(text(sql), params)
    ]
    total = sum(r[4] for r in rows)
    out, cum = [], 0
    for s, side, pos, code, n in rows:
        cum += n
        out.append(
            PositionParetoRow(s, side, pos, code, error_name(code), n, n / total, cum / total)
        )
    return out


def _day_params(window: Window) -> dict[str, object]:
    return split(window, "day").params()
