"""First-pass and final yield, grouped as asked, and policy version comparison.

Definitions (ISO 22400 quality figures, per station). A job row is one PLC job, that is
one part at one station; a retry by the cell happens inside the job (``attempt`` > 1).
- parts: jobs;
- first-pass yield = jobs OK at the first attempt / parts;
- final yield = parts good in the end / parts, where good in the end is an OK job (at any
  attempt) or a NOK job whose rework was recorded ``reworked_ok``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import text
from sqlalchemy.orm import Session

from cell.insight.window import QueryError, Window, split

GroupKey = Literal["station", "robot", "task", "policy", "day", "shift", "hour"]
GROUP_KEYS: tuple[str, ...] = ("station", "robot", "task", "policy", "day", "shift", "hour")

# Partial aggregates with the rollup's columns: whole hours from the rollup, edges raw.
JOBS_PARTS = """
  SELECT bucket, station_id, robot_id, task, policy_version, jobs, first_attempts, ok,
         first_pass_ok, reworked_ok, scrapped, worked, cycle_ms_sum, takt_ms_sum
  FROM rollup_jobs_hourly WHERE bucket >= :fs AND bucket < :fe {where}
  UNION ALL
  SELECT date_trunc('hour', ended_at, 'UTC'), station_id, robot_id, task, policy_version,
         1, (attempt = 1)::int, ok::int, (ok AND attempt = 1)::int,
         (NOT ok AND rework IS NOT DISTINCT FROM 'reworked_ok')::int,
         (NOT ok AND rework IS NOT DISTINCT FROM 'scrapped')::int,
         (cycle_time_ms > 0)::int, cycle_time_ms,
         analytics_takt_ms(recipe_id, station_id)
  FROM jobs WHERE ((ended_at >= :e1a AND ended_at < :e1b)
                   OR (ended_at >= :e2a AND ended_at < :e2b)) {where}
"""

# Hour -> shift for the shifts overlapping the window (shifts are whole UTC hours).
SHIFT_HOURS = """
  SELECT sh.id AS shift_id, sh.name || ' ' || to_char(sh.starts_at AT TIME ZONE 'UTC',
         'YYYY-MM-DD HH24:MI') AS shift, h AS bucket
  FROM shifts sh CROSS JOIN LATERAL generate_series(sh.starts_at,
       sh.ends_at - interval '1 hour', interval '1 hour') AS h
  WHERE sh.ends_at > :start AND sh.starts_at < :end
"""


def _group_exprs(alias: str, bucket: str) -> dict[str, str]:
    """Group expressions over a rollup row or a raw job row (``bucket`` is its UTC hour)."""
    return {
        "station": f"{alias}.station_id",
        "robot": f"{alias}.robot_id",
        "task": f"{alias}.task",
        "policy": f"{alias}.policy_version",
        "day": f"({bucket} AT TIME ZONE :tz)::date",
        "shift": "sm.shift",
        "hour": bucket,
    }


_FILTER_COLS = {
    "station": "station_id",
    "robot": "robot_id",
    "task": "task",
    "policy": "policy_version",
}


@dataclass(frozen=True)
class YieldRow:
    """One group; the grouping fields not asked for are None."""

    station_id: str | None
    robot_id: str | None
    task: str | None
    policy_version: str | None
    day: date | None
    shift: str | None
    hour: datetime | None
    parts: int  # jobs: one PLC job is one part at the station
    retried: int  # parts the cell tried more than once
    first_pass_ok: int
    final_good: int
    scrapped: int

    @property
    def first_pass_yield(self) -> float | None:
        return self.first_pass_ok / self.parts if self.parts else None

    @property
    def final_yield(self) -> float | None:
        return self.final_good / self.parts if self.parts else None


def _filters(filters: dict[str, str | None]) -> tuple[list[str], dict[str, object]]:
    """(filtered columns, bind parameters named f_<column>)."""
    cols: list[str] = []
    params: dict[str, object] = {}
    for key, value in filters.items():
        if value is not None:
            cols.append(_FILTER_COLS[key])
            params[f"f_{_FILTER_COLS[key]}"] = value
    return cols, params


def check_tz(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise QueryError(
            f"unknown time zone {tz!r} (use an IANA name like Europe/Berlin)"
        ) from None
    return tz


def yield_by(
    session: Session,
    window: Window,
    by: Sequence[GroupKey] = ("station",),
    *,
    station: str | None = None,
    robot: str | None = None,
    task: str | None = None,
    policy: str | None = None,
    tz: str = "UTC",
) -> list[YieldRow]:
    """First-pass and final yield over ``window`` grouped by ``by`` (in that order).

    Days are calendar days in ``tz``; shifts come from the shifts table (hours in no shift
    form a group with ``shift`` None).
    """
    unknown = [k for k in by if k not in GROUP_KEYS]
    if unknown:
        raise QueryError(
            f"cannot group by {', '.join(unknown)}; choose from {', '.join(GROUP_KEYS)}"
        )
    check_tz(tz)
    where, params = _filters({"station": station, "robot": robot, "task": task, "policy": policy})
    keys = list(dict.fromkeys(by))
    params |= split(window, "hour").params() | {"start": window.start, "end": window.end, "tz": tz}
    out = []
    for row in session.execute(text(_yield_sql(keys, where)), params):
        yield_row = _yield_row(keys, row)
        if yield_row is not None:
            out.append(yield_row)
    return out


# The two sides of a yield query: (source, alias, its UTC hour, the five measures, the
# window condition). Whole hours come from the rollup, the window's edges from raw jobs.
_YIELD_SOURCES = (
    (
        "rollup_jobs_hourly",
        "r",
        "r.bucket",
        "sum(r.jobs), sum(r.jobs - r.first_attempts), sum(r.first_pass_ok), "
        "sum(r.ok + r.reworked_ok), sum(r.scrapped)",
        "r.bucket >= :fs AND r.bucket < :fe",
    ),
    (
        "jobs",
        "j",
        "date_trunc('hour', j.ended_at, 'UTC')",
        "count(*), count(*) FILTER (WHERE j.attempt > 1), "
        "count(*) FILTER (WHERE j.ok AND j.attempt = 1), "
        "count(*) FILTER (WHERE j.ok OR j.rework = 'reworked_ok'), "
        "count(*) FILTER (WHERE NOT j.ok AND j.rework = 'scrapped')",
        "((j.ended_at >= :e1a AND j.ended_at < :e1b) OR "
        "(j.ended_at >= :e2a AND j.ended_at < :e2b))",
    ),
)


def _yield_sql(keys: list[GroupKey], where: list[str]) -> str:
    """The query: columns k0..k<n-1> for ``keys``, then parts, retried, first-pass OK,
    final good and scrapped; ``where`` are the filtered columns (bound as f_<column>)."""
    n = len(keys)
    ordinals = ", ".join(str(i + 1) for i in range(n))
    group = f"GROUP BY {ordinals}" if n else ""
    shift = "shift" in keys
    # Each side is aggregated to the asked groups before the two are added up, so the
    # year's rollup rows are summed by one narrow hash aggregate.
    branches = []
    for source, alias, bucket, measures, where_at in _YIELD_SOURCES:
        exprs = _group_exprs(alias, bucket)
        select_keys = "".join(f"{exprs[k]} AS k{i}, " for i, k in enumerate(keys))
        join = f"LEFT JOIN sm ON sm.bucket = {bucket}" if shift else ""
        branches.append(
            f"SELECT {select_keys}{measures} FROM {source} {alias} {join} "
            f"WHERE {where_at} " + "".join(f"AND {alias}.{c} = :f_{c} " for c in where) + group
        )
    outer_keys = "".join(f"k{i}, " for i in range(n))
    cte = f"WITH sm AS ({SHIFT_HOURS}) " if shift else ""
    return (
        f"""
    {cte}SELECT {outer_keys} sum(c1), sum(c2), sum(c3), sum(c4), sum(c5)
    FROM ({branches[0]} UNION ALL {branches[1]}) p ("""
        + ", ".join([f"k{i}" for i in range(n)] + ["c1", "c2", "c3", "c4", "c5"])
        + f""")
    {group} {"ORDER BY " + ordinals if n else ""}
    """
    )


def _yield_row(keys: list[GroupKey], row: Sequence[Any]) -> YieldRow | None:
    """One result row as a YieldRow; None for a group with no parts."""
    vals = dict(zip(keys, row[: len(keys)], strict=True))
    parts, retried, fp, good, scrapped = (int(v or 0) for v in row[len(keys) :])
    if parts == 0:
        return None
    return YieldRow(
        station_id=vals.get("station"),
        robot_id=vals.get("robot"),
        task=vals.get("task"),
        policy_version=vals.get("policy"),
        day=vals.get("day"),
        shift=vals.get("shift"),
        hour=vals.get("hour"),
        parts=parts,
        retried=retried,
        first_pass_ok=fp,
        final_good=good,
        scrapped=scrapped,
    )


@dataclass(frozen=True)
class PolicyComparison:
    """First-pass yield of versions A and B at one station, B - A with a 95 % interval
    (Newcombe's hybrid score interval) and a two-sided two-proportion z-test."""

    station_id: str
    version_a: str
    version_b: str
    parts_a: int
    ok_a: int
    parts_b: int
    ok_b: int
    yield_a: float | None
    yield_b: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    verdict: str


def _wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def two_proportions(
    ka: int, na: int, kb: int, nb: int
) -> tuple[float, float, float, float, float, float]:
    """(pa, pb, pb - pa, 95 % low, 95 % high, two-sided p): Newcombe's hybrid score
    interval for the difference and the pooled two-proportion z-test."""
    pa, pb = ka / na, kb / nb
    la, ua = _wilson(ka, na)
    lb, ub = _wilson(kb, nb)
    d = pb - pa
    low = d - math.sqrt((pb - lb) ** 2 + (ua - pa) ** 2)
    high = d + math.sqrt((ub - pb) ** 2 + (pa - la) ** 2)
    pooled = (ka + kb) / (na + nb)
    se = math.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
    p_value = math.erfc(abs(d) / se / math.sqrt(2)) if se > 0 else 1.0
    return pa, pb, d, low, high, p_value


def compare_policies(
    session: Session,
    window: Window,
    station: str,
    version_a: str,
    version_b: str,
    *,
    alpha: float = 0.05,
) -> PolicyComparison:
    """Is B's first-pass yield at ``station`` different from A's, or is it luck?"""
    if version_a == version_b:
        raise QueryError("compare two different policy versions")
    rows = {r.policy_version: r for r in yield_by(session, window, ("policy",), station=station)}
    a, b = rows.get(version_a), rows.get(version_b)
    na, ka = (a.parts, a.first_pass_ok) if a else (0, 0)
    nb, kb = (b.parts, b.first_pass_ok) if b else (0, 0)
    if na == 0 or nb == 0:
        missing = version_a if na == 0 else version_b
        known = ", ".join(sorted(v for v in rows if v)) or "none"
        return PolicyComparison(
            station,
            version_a,
            version_b,
            na,
            ka,
            nb,
            kb,
            ka / na if na else None,
            kb / nb if nb else None,
            None,
            None,
            None,
            None,
            f"no parts with {missing} at {station} in the window (versions seen: {known})",
        )
    pa, pb, d, low, high, p_value = two_proportions(ka, na, kb, nb)
    if p_value < alpha:
        better = version_b if d > 0 else version_a
        verdict = f"{better} is better: difference {100 * d:+.2f} points, p = {p_value:.3g}"
    else:
        verdict = (
            f"no significant difference (p = {p_value:.3g}); the interval "
            f"[{100 * low:+.2f}, {100 * high:+.2f}] points includes 0"
        )
    return PolicyComparison(
        station, version_a, version_b, na, ka, nb, kb, pa, pb, d, low, high, p_value, verdict
    )
