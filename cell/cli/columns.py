"""How a column of the ``intern`` tables reads for a person: its heading, how its values
are written and how much it is worth when the terminal is narrow.

Rows keep their machine names (``first_pass_yield``, ``station_id``): CSV and JSON print
those unchanged, because scripts read them. Only the terminal table uses what is here, so
every command shows a yield, an availability or an OEE the same way (a percentage with
one decimal) and under the same heading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """How a column's values are written in a table."""

    TEXT = "text"  # wraps at spaces
    ID = "id"  # never cut: station, robot, part and version ids
    COUNT = "count"  # integers with thousands separators
    NUMBER = "number"  # measured values, four significant digits
    PERCENT = "percent"  # a fraction shown as "93.4 %"
    POINTS = "points"  # a difference of fractions shown as "+2.1 pp"
    MS = "ms"  # milliseconds shown as seconds
    SECONDS = "seconds"  # a duration shown in s, min or h
    TIME = "time"  # a moment, in the line's time zone
    RESULT = "result"  # a boolean job outcome shown as OK / NOK


@dataclass(frozen=True)
class Column:
    """A column's heading, its kind and its worth: 0 is always shown; when the terminal is
    too narrow the columns worth 3 go first, then 2, then 1."""

    label: str
    kind: Kind = Kind.TEXT
    worth: int = 1


def _c(label: str, kind: Kind = Kind.TEXT, worth: int = 1) -> Column:
    return Column(label, kind, worth)


K = Kind
# Every machine name the engineers', supervisors' and technicians' commands print.
COLUMNS: Mapping[str, Column] = {
    # who and where
    "station_id": _c("Station", K.ID, 0),
    "robot_id": _c("Robot", K.ID, 0),
    "part_id": _c("Part", K.ID, 0),
    "task": _c("Task", K.TEXT, 1),
    "policy_version": _c("Policy version", K.ID, 1),
    "skills": _c("Skills", K.TEXT, 1),
    "author": _c("By", K.TEXT, 2),
    "reason": _c("Reason", K.TEXT, 2),
    "since": _c("Since", K.TIME, 1),
    # when
    "day": _c("Day", K.TEXT, 0),
    "shift": _c("Shift", K.TEXT, 0),
    "hour": _c("Hour", K.TIME, 0),
    "time": _c("Time", K.TIME, 0),
    "started_at": _c("Started", K.TIME, 0),
    "ended_at": _c("Ended", K.TIME, 3),
    # yield
    "parts": _c("Parts", K.COUNT, 0),
    "jobs": _c("Jobs", K.COUNT, 2),
    "retried": _c("Retried", K.COUNT, 2),
    "scrapped": _c("Scrapped", K.COUNT, 2),
    "first_pass_ok": _c("First-pass OK", K.COUNT, 2),
    "first_pass_yield": _c("First-pass yield", K.PERCENT, 0),
    "final_yield": _c("Final yield", K.PERCENT, 1),
    # pareto
    "error_code": _c("Code", K.ID, 1),
    "name": _c("Failure", K.TEXT, 0),
    "error_name": _c("Failure", K.TEXT, 0),
    "count": _c("Count", K.COUNT, 0),
    "share": _c("Share", K.PERCENT, 1),
    "cumulative": _c("Cumulative", K.PERCENT, 1),
    # capability and control charts
    "side": _c("Side", K.TEXT, 0),
    "position": _c("Position", K.COUNT, 0),
    "lsl": _c("LSL", K.NUMBER, 2),
    "usl": _c("USL", K.NUMBER, 2),
    "n": _c("n", K.COUNT, 1),
    "mean": _c("Mean", K.NUMBER, 1),
    "sd": _c("SD", K.NUMBER, 2),
    "cp": _c("Cp", K.NUMBER, 1),
    "cpk": _c("Cpk", K.NUMBER, 0),
    "cp_all": _c("Cp (all)", K.NUMBER, 3),
    "cpk_all": _c("Cpk (all)", K.NUMBER, 2),
    "value": _c("Value", K.NUMBER, 0),
    "range": _c("Range", K.NUMBER, 1),
    "rules": _c("Rules broken", K.TEXT, 1),
    # OEE
    "planned_s": _c("Planned", K.SECONDS, 2),
    "running_s": _c("Running", K.SECONDS, 2),
    "takt_s_sum": _c("Parts x takt", K.SECONDS, 3),
    "availability": _c("Availability", K.PERCENT, 0),
    "performance": _c("Performance", K.PERCENT, 0),
    "quality": _c("Quality", K.PERCENT, 0),
    "oee": _c("OEE", K.PERCENT, 0),
    # policy comparison
    "version_a": _c("Version A", K.ID, 0),
    "version_b": _c("Version B", K.ID, 0),
    "parts_a": _c("Parts A", K.COUNT, 1),
    "ok_a": _c("OK A", K.COUNT, 2),
    "parts_b": _c("Parts B", K.COUNT, 1),
    "ok_b": _c("OK B", K.COUNT, 2),
    "yield_a": _c("First-pass yield A", K.PERCENT, 0),
    "yield_b": _c("First-pass yield B", K.PERCENT, 0),
    "difference": _c("B - A", K.POINTS, 0),
    "ci_low": _c("95 % interval from", K.POINTS, 1),
    "ci_high": _c("95 % interval to", K.POINTS, 1),
    "p_value": _c("p-value", K.NUMBER, 1),
    "verdict": _c("Verdict", K.TEXT, 0),
    # canary rollouts
    "rollout_id": _c("Rollout", K.ID, 0),
    "incumbent_version": _c("Incumbent", K.ID, 0),
    "candidate_version": _c("Candidate", K.ID, 0),
    "candidate_jobs": _c("Candidate jobs", K.COUNT, 1),
    "incumbent_jobs": _c("Incumbent jobs", K.COUNT, 1),
    "candidate_fpy": _c("Candidate FPY", K.PERCENT, 0),
    "incumbent_fpy": _c("Incumbent FPY", K.PERCENT, 0),
    "reference_jobs": _c("Incumbent jobs before", K.COUNT, 2),
    "reference_fpy": _c("Incumbent FPY before", K.PERCENT, 1),
    "started_by": _c("Started by", K.TEXT, 2),
    "decided_at": _c("Decided", K.TIME, 1),
    "decided_by": _c("Decided by", K.TEXT, 1),
    # alerts
    "id": _c("Alert", K.ID, 0),
    "kind": _c("Kind", K.TEXT, 2),
    "message": _c("Message", K.TEXT, 0),
    "raised_at": _c("Raised", K.TIME, 0),
    "acknowledged_at": _c("Acknowledged", K.TIME, 2),
    "acknowledged_by": _c("Acknowledged by", K.TEXT, 1),
    "rework": _c("Rework", K.TEXT, 1),
    "reworked_by": _c("Reworked by", K.TEXT, 2),
    "cleared_at": _c("Cleared", K.TIME, 0),
    "cleared_by": _c("Cleared by", K.TEXT, 1),
    # a part's jobs
    "job_id": _c("Job", K.ID, 2),
    "job_key": _c("Job", K.ID, 0),
    "frames": _c("Frames", K.COUNT, 2),
    "size_mb": _c("Size MB", K.NUMBER, 1),
    "pruned_at": _c("Pruned", K.TIME, 2),
    "epoch": _c("Epoch", K.COUNT, 3),
    "job_seq": _c("JobSeq", K.COUNT, 2),
    "cycle_time_ms": _c("Cycle time", K.MS, 1),
    "cycle_time_s": _c("Cycle time", K.SECONDS, 1),
    "outcome": _c("Outcome", K.TEXT, 0),
    "fasteners": _c("Fasteners", K.TEXT, 1),
    # the parts seen
    "first_seen": _c("First seen", K.TIME, 1),
    "last_seen": _c("Last seen", K.TIME, 0),
    "stations": _c("Stations", K.TEXT, 1),
    "nok_jobs": _c("NOK jobs", K.COUNT, 1),
    "state": _c("State", K.TEXT, 0),
    "ok": _c("Result", K.RESULT, 0),
    "attempt": _c("Attempt", K.COUNT, 2),
    "fasteners_nok": _c("NOK fasteners", K.COUNT, 1),
    "alerts": _c("Alerts", K.COUNT, 2),
    "episode": _c("Episode", K.TEXT, 2),
}


def column(key: str, sample: Any = None) -> Column:
    """The column for ``key``; an unknown key gets a heading from its name
    (``cycle_time_ms`` -> "Cycle time ms") and a kind from a sample value."""
    known = COLUMNS.get(key)
    if known is not None:
        return known
    return guessed(key.removesuffix("_id").replace("_", " ").strip().capitalize() or key, sample)


def guessed(label: str, sample: Any) -> Column:
    """A column headed ``label`` whose kind is guessed from a sample value."""
    if isinstance(sample, bool):
        return Column(label, Kind.TEXT, 2)
    if isinstance(sample, int):
        return Column(label, Kind.COUNT, 2)
    if isinstance(sample, float):
        return Column(label, Kind.NUMBER, 2)
    if isinstance(sample, datetime):
        return Column(label, Kind.TIME, 2)
    return Column(label, Kind.TEXT, 2)


def _number(v: float) -> str:
    if v != 0 and abs(v) < 1e-3:
        return f"{v:.2e}"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def _duration(seconds: float) -> str:
    # A cycle time reads best in seconds; a shift's planned time in hours.
    if abs(seconds) >= 3 * 3600:
        return f"{seconds / 3600:.1f} h"
    if abs(seconds) >= 600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def _moment(t: datetime, zone: tzinfo | None) -> str:
    if zone is not None and t.tzinfo is not None:
        t = t.astimezone(zone)
    return (
        f"{t:%Y-%m-%d %H:%M}" if t.second == 0 and t.microsecond == 0 else f"{t:%Y-%m-%d %H:%M:%S}"
    )


def cell(kind: Kind, value: Any, zone: tzinfo | None = None) -> str:
    """``value`` written for a person: "-" for nothing, fractions as percentages with one
    decimal, times in ``zone`` to the minute (or second), lists joined with commas."""
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(cell(kind, v, zone) for v in value)
    if isinstance(value, bool):
        if kind is Kind.RESULT:
            return "OK" if value else "NOK"
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return _moment(value, zone)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int | float):
        return _numeric(kind, value)
    return str(value)


def _numeric(kind: Kind, v: float) -> str:
    if kind is Kind.PERCENT:
        return f"{100 * v:.1f} %"
    if kind is Kind.POINTS:
        return f"{100 * v:+.1f} pp"
    if kind is Kind.MS:
        return f"{v / 1000:.1f} s"
    if kind is Kind.SECONDS:
        return _duration(v)
    if isinstance(v, int) and kind is Kind.COUNT:
        return f"{v:,}"
    if isinstance(v, int):
        return str(v)
    return _number(v)


# Kinds whose values are never wrapped or cut: a number or an id split over two lines is
# misread, and one cut with an ellipsis is wrong.
WHOLE = frozenset(Kind) - {Kind.TEXT}
