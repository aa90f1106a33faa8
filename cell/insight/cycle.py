"""Cycle-time distribution against takt, per station.

Jobs where the robot did not work (cycle time 0: bad input, no robot, interrupted) are
left out. The daily rollup keeps 0.5 s bins, so percentiles are exact to half a second.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from cell.insight.window import Window, split

BIN_MS = 500


@dataclass(frozen=True)
class CycleDistribution:
    station_id: str
    takt_s: float | None
    jobs: int
    p50_s: float | None
    p95_s: float | None
    over_takt: float | None  # share of jobs whose cycle time reached takt or more
    bins: tuple[tuple[float, int], ...]  # (bin start in s, jobs), 0.5 s wide


def _quantile(bins: list[tuple[int, int]], total: int, q: float) -> float:
    """Linear interpolation inside the bin that holds the q-quantile."""
    target = q * total
    seen = 0
    for b, n in bins:
        if seen + n >= target:
            return (b * BIN_MS + BIN_MS * (target - seen) / n) / 1000.0
        seen += n
    return (bins[-1][0] + 1) * BIN_MS / 1000.0


def cycle_distribution(
    session: Session, window: Window, *, station: str | None = None
) -> list[CycleDistribution]:
    w = "AND station_id = :station" if station is not None else ""
    sql = f"""
    SELECT station_id, bin, sum(n) FROM (
      SELECT station_id, bin, n FROM rollup_cycle_daily
      WHERE day >= :ds AND day < :de {w}
      UNION ALL
      SELECT station_id, cycle_time_ms / {BIN_MS}, 1 FROM jobs
      WHERE cycle_time_ms > 0 AND ((ended_at >= :e1a AND ended_at < :e1b)
                                   OR (ended_at >= :e2a AND ended_at < :e2b)) {w}
    ) p GROUP BY 1, 2 ORDER BY 1, 2
    """
    params = split(window, "day").params() | {"station": station}
    per: dict[str, list[tuple[int, int]]] = {}
    for st, b, n in session.execute(text(sql), params):
        per.setdefault(st, []).append((int(b), int(n)))
    takts: dict[str, float] = dict(
        session.execute(
            text("SELECT station_id, max(takt_s) FROM recipes GROUP BY station_id")
        ).all()
    )
    out = []
    for st, bins in per.items():
        total = sum(n for _, n in bins)
        takt = takts.get(st)
        over = sum(n for b, n in bins if b * BIN_MS >= takt * 1000) / total if takt else None
        out.append(
            CycleDistribution(
                st,
                takt,
                total,
                _quantile(bins, total, 0.5),
                _quantile(bins, total, 0.95),
                over,
                tuple((b * BIN_MS / 1000.0, n) for b, n in bins),
            )
        )
    return out
