"""Time windows and how a window splits into whole rollup buckets and raw edges.

Every analytics query answers ``[start, end)``: the whole UTC hours (or days) inside it
come from the rollup tables, the ragged edges from the raw rows, so any window is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from cell.errors import InvalidInput

Grain = Literal["hour", "day"]


class QueryError(InvalidInput):
    """A query asked for something that cannot be answered; the message says why."""


@dataclass(frozen=True)
class Window:
    """A half-open time window ``[start, end)`` in UTC; naive datetimes are taken as UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=UTC))
        if self.end <= self.start:
            raise QueryError(
                f"the window ends ({self.end:%Y-%m-%d %H:%M}) before it starts "
                f"({self.start:%Y-%m-%d %H:%M})"
            )

    @classmethod
    def last(cls, days: float, now: datetime | None = None) -> Window:
        end = now or datetime.now(UTC)
        return cls(end - timedelta(days=days), end)


def _floor(t: datetime, grain: Grain) -> datetime:
    t = t.astimezone(UTC)
    t = t.replace(minute=0, second=0, microsecond=0)
    return t.replace(hour=0) if grain == "day" else t


def _ceil(t: datetime, grain: Grain) -> datetime:
    f = _floor(t, grain)
    if f == t:
        return f
    return f + (timedelta(days=1) if grain == "day" else timedelta(hours=1))


@dataclass(frozen=True)
class Split:
    """``full`` is the whole-bucket part (or None); ``edges`` are read from raw rows."""

    full: tuple[datetime, datetime] | None
    edges: tuple[tuple[datetime, datetime], ...]

    def params(self) -> dict[str, object]:
        """Bind parameters: fs/fe for the rollup part (ds/de: the same as UTC dates),
        e1a/e1b and e2a/e2b for the edges (empty ranges when there is no such edge)."""
        far = datetime(1970, 1, 1, tzinfo=UTC)
        fs, fe = self.full or (far, far)
        edges = list(self.edges) + [(far, far)] * (2 - len(self.edges))
        return {
            "fs": fs,
            "fe": fe,
            "ds": fs.astimezone(UTC).date(),
            "de": fe.astimezone(UTC).date(),
            "e1a": edges[0][0],
            "e1b": edges[0][1],
            "e2a": edges[1][0],
            "e2b": edges[1][1],
        }


def split(window: Window, grain: Grain) -> Split:
    fs, fe = _ceil(window.start, grain), _floor(window.end, grain)
    if fs >= fe:
        return Split(None, ((window.start, window.end),))
    edges = tuple((a, b) for a, b in ((window.start, fs), (fe, window.end)) if a < b)
    return Split((fs, fe), edges)
