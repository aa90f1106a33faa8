"""Torque and angle SPC per fastener position: capability and control charts.

Capability uses the overall sample standard deviation, as tightening controllers report
Cp/Cpk; it is given on OK fasteners (the controllers' convention) and on all fasteners.
Groups are split by specification limits, so a recipe change never mixes two windows.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Row, text
from sqlalchemy.orm import Session

from cell.insight.window import QueryError, Window, split

Measure = Literal["torque", "angle"]

# One charted value: (ended_at, value, lower limit, upper limit).
_ChartRow = Row[datetime, float, float, float]


@dataclass(frozen=True)
class Capability:
    n: int
    mean: float | None
    sd: float | None
    cp: float | None
    cpk: float | None


@dataclass(frozen=True)
class PositionSpc:
    station_id: str
    side: str
    position: int
    measure: str
    lsl: float
    usl: float
    ok_only: Capability
    all: Capability


def _capability(n: float, s: float, ss: float, lsl: float, usl: float) -> Capability:
    if n <= 0:
        return Capability(0, None, None, None, None)
    mean = s / n
    sd = math.sqrt(max(0.0, (ss - s * s / n) / (n - 1))) if n > 1 else None
    if not sd:
        return Capability(int(n), mean, sd, None, None)
    return Capability(
        int(n), mean, sd, (usl - lsl) / (6 * sd), min(usl - mean, mean - lsl) / (3 * sd)
    )


def spc_summary(
    session: Session, window: Window, *, station: str | None = None, measure: Measure = "torque"
) -> list[PositionSpc]:
    """Capability of ``measure`` per station, side and position (and limits)."""
    if measure not in ("torque", "angle"):
        raise QueryError("measure is torque or angle")
    lo, hi = (
        ("torque_min_nm", "torque_max_nm")
        if measure == "torque"
        else ("angle_min_deg", "angle_max_deg")
    )
    val = "torque_nm" if measure == "torque" else "angle_deg"
    w = "AND station_id = :station" if station is not None else ""
    wj = "AND j.station_id = :station" if station is not None else ""
    sql = f"""
    SELECT station_id, side, position, lo, hi,
           sum(n) FILTER (WHERE ok), sum(s) FILTER (WHERE ok), sum(ss) FILTER (WHERE ok),
           sum(n), sum(s), sum(ss)
    FROM (
      SELECT station_id, side, position, {lo} AS lo, {hi} AS hi, ok, n,
             {measure}_sum AS s, {measure}_sumsq AS ss
      FROM rollup_fasteners_daily
      WHERE day >= :ds AND day < :de {w}
      UNION ALL
      SELECT j.station_id, f.side, f.position, f.{lo}, f.{hi}, f.ok, 1, f.{val}, f.{val} ^ 2
      FROM jobs j JOIN fastener_results f ON f.job_id = j.id
      WHERE ((j.ended_at >= :e1a AND j.ended_at < :e1b)
             OR (j.ended_at >= :e2a AND j.ended_at < :e2b)) {wj}
    ) p GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    """
    params = split(window, "day").params() | {"station": station}
    out = []
    for st, side, pos, lsl, usl, n_ok, s_ok, ss_ok, n, s, ss in session.execute(text(sql), params):
        out.append(
            PositionSpc(
                st,
                side,
                int(pos),
                measure,
                lsl,
                usl,
                _capability(float(n_ok or 0), float(s_ok or 0), float(ss_ok or 0), lsl, usl),
                _capability(float(n), float(s), float(ss), lsl, usl),
            )
        )
    return out


# Control chart constants for subgroups of 2..10 (ASTM / Montgomery tables).
A2 = {2: 1.880, 3: 1.023, 4: 0.729, 5: 0.577, 6: 0.483, 7: 0.419, 8: 0.373, 9: 0.337, 10: 0.308}
D3 = {2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 7: 0.076, 8: 0.136, 9: 0.184, 10: 0.223}
D4 = {2: 3.267, 3: 2.574, 4: 2.282, 5: 2.114, 6: 2.004, 7: 1.924, 8: 1.864, 9: 1.816, 10: 1.777}


@dataclass(frozen=True)
class ChartPoint:
    time: datetime
    value: float  # the individual value, or the subgroup mean
    range: float | None  # moving range, or the subgroup range
    rules: tuple[int, ...]  # Nelson rules this point violates


@dataclass(frozen=True)
class ControlChart:
    station_id: str
    side: str
    position: int
    measure: str
    chart: str  # "imr" or "xbar_r"
    subgroup: int
    center: float
    ucl: float
    lcl: float
    sigma: float
    range_center: float
    range_ucl: float
    range_lcl: float
    lsl: float | None
    usl: float | None
    points: tuple[ChartPoint, ...]


def nelson_violations(values: list[float], center: float, sigma: float) -> list[tuple[int, ...]]:
    """Per point, the Nelson rules it completes: 1 beyond 3 sigma; 2 nine on one side;
    3 six rising or falling; 5 two of three beyond 2 sigma on one side; 6 four of five
    beyond 1 sigma on one side."""
    out: list[set[int]] = [set() for _ in values]
    z = [(v - center) / sigma if sigma > 0 else 0.0 for v in values]
    for i, zi in enumerate(z):
        if abs(zi) > 3:
            out[i].add(1)
        if i >= 8 and (
            all(x > 0 for x in z[i - 8 : i + 1]) or all(x < 0 for x in z[i - 8 : i + 1])
        ):
            out[i].add(2)
        if i >= 5:
            seg = values[i - 5 : i + 1]
            steps = [b - a for a, b in itertools.pairwise(seg)]
            if all(s > 0 for s in steps) or all(s < 0 for s in steps):
                out[i].add(3)
        for sign in (1, -1):
            if i >= 2 and sum(1 for x in z[i - 2 : i + 1] if sign * x > 2) >= 2:
                out[i].add(5)
            if i >= 4 and sum(1 for x in z[i - 4 : i + 1] if sign * x > 1) >= 4:
                out[i].add(6)
    return [tuple(sorted(s)) for s in out]


def control_chart(
    session: Session,
    window: Window,
    station: str,
    side: str,
    position: int,
    *,
    measure: Measure = "torque",
    chart: Literal["imr", "xbar_r"] = "imr",
    subgroup: int = 5,
    points: int = 100,
) -> ControlChart:
    """I-MR chart of the last ``points`` values in ``window`` (or X-bar R of the last
    ``points`` subgroups of ``subgroup`` consecutive values), limits from the data shown."""
    if chart == "xbar_r" and subgroup not in A2:
        raise QueryError("an X-bar R subgroup has 2 to 10 values")
    if not 2 <= points <= 5000:
        raise QueryError("a chart shows 2 to 5000 points")
    limit = points if chart == "imr" else points * subgroup
    rows = _chart_values(session, window, station, side, position, measure, limit)
    if len(rows) < 2 or (chart == "xbar_r" and len(rows) < 2 * subgroup):
        raise QueryError(
            f"too few {measure} values at {station} {side} {position} in the "
            f"window for a chart ({len(rows)})"
        )
    # The limits shown are those of the latest value.
    lsl, usl = rows[-1][2], rows[-1][3]
    c = _imr(rows) if chart == "imr" else _xbar_r(rows, subgroup)
    rules = nelson_violations(c.values, c.center, c.sigma)
    pts = tuple(
        ChartPoint(t, x, m, r)
        for t, x, m, r in zip(c.times, c.values, c.ranges, rules, strict=True)
    )
    return ControlChart(
        station,
        side,
        position,
        measure,
        chart,
        c.subgroup,
        c.center,
        c.ucl,
        c.lcl,
        c.sigma,
        c.range_center,
        c.range_ucl,
        c.range_lcl,
        lsl,
        usl,
        pts,
    )


def _chart_values(
    session: Session,
    window: Window,
    station: str,
    side: str,
    position: int,
    measure: Measure,
    limit: int,
) -> Sequence[_ChartRow]:
    """The last ``limit`` (ended_at, value, lower limit, upper limit) in ``window``,
    oldest first."""
    val = "f.torque_nm" if measure == "torque" else "f.angle_deg"
    lim = (
        "f.torque_min_nm, f.torque_max_nm"
        if measure == "torque"
        else "f.angle_min_deg, f.angle_max_deg"
    )
    return session.execute(
        text(f"""
        SELECT j.ended_at, {val}, {lim} FROM jobs j
        JOIN fastener_results f ON f.job_id = j.id AND f.side = :side AND f.position = :pos
        WHERE j.station_id = :station AND j.ended_at >= :start AND j.ended_at < :end
        ORDER BY j.ended_at DESC LIMIT :limit"""),
        {
            "station": station,
            "side": side,
            "pos": position,
            "start": window.start,
            "end": window.end,
            "limit": limit,
        },
    ).all()[::-1]


@dataclass(frozen=True)
class _Plotted:
    """A chart's points and limits, before the Nelson rules are applied."""

    times: list[datetime]
    values: list[float]
    ranges: list[float | None]
    subgroup: int
    center: float
    sigma: float
    ucl: float
    lcl: float
    range_center: float
    range_ucl: float
    range_lcl: float


def _imr(rows: Sequence[_ChartRow]) -> _Plotted:
    """Individuals and moving range; sigma from the mean moving range (d2 = 1.128)."""
    xs = [float(r[1]) for r in rows]
    times = [r[0] for r in rows]
    mrs: list[float | None] = [None] + [abs(b - a) for a, b in itertools.pairwise(xs)]
    mr_bar = sum(m for m in mrs if m is not None) / (len(xs) - 1)
    sigma = mr_bar / 1.128
    center = sum(xs) / len(xs)
    return _Plotted(
        times=times,
        values=xs,
        ranges=mrs,
        subgroup=1,
        center=center,
        sigma=sigma,
        ucl=center + 3 * sigma,
        lcl=center - 3 * sigma,
        range_center=mr_bar,
        range_ucl=3.267 * mr_bar,
        range_lcl=0.0,
    )


def _xbar_r(rows: Sequence[_ChartRow], subgroup: int) -> _Plotted:
    """Subgroup means and ranges; the oldest values that do not fill a subgroup are
    dropped, so the newest value always closes one."""
    groups = [rows[i : i + subgroup] for i in range(len(rows) % subgroup, len(rows), subgroup)]
    xs = [sum(float(r[1]) for r in g) / subgroup for g in groups]
    times = [g[-1][0] for g in groups]
    mrs: list[float | None] = [
        max(float(r[1]) for r in g) - min(float(r[1]) for r in g) for g in groups
    ]
    r_bar = sum(m for m in mrs if m is not None) / len(mrs)
    center = sum(xs) / len(xs)
    return _Plotted(
        times=times,
        values=xs,
        ranges=mrs,
        subgroup=subgroup,
        center=center,
        sigma=A2[subgroup] * r_bar / 3,
        ucl=center + A2[subgroup] * r_bar,
        lcl=center - A2[subgroup] * r_bar,
        range_center=r_bar,
        range_ucl=D4[subgroup] * r_bar,
        range_lcl=D3[subgroup] * r_bar,
    )
