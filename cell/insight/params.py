"""Validated inputs shared by the CLI and the HTTP API (pydantic at every boundary)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from cell.insight.window import Window

StationId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")]

TIME_EXAMPLE = "2026-03-01T06:00 (the line's time zone) or 2026-03-01T06:00+01:00"


def parse_time(text: str, zone: str) -> datetime:
    """``text`` as ISO 8601: a date, or a date and a time, with or without a UTC offset
    (``Z`` or ``+01:00``). Without one it is local time in ``zone``, an IANA name. A bad
    ``text`` raises ``ValueError`` saying what is accepted."""
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time, e.g. {TIME_EXAMPLE}") from None
    return t if t.tzinfo is not None else t.replace(tzinfo=ZoneInfo(zone))


# The times a query may name. Outside them a window's arithmetic would leave what Python
# and the record can represent (year 1 minus seven days); nothing is on record there.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _on_record(t: datetime) -> datetime:
    aware = t if t.tzinfo is not None else t.replace(tzinfo=UTC)
    if not EARLIEST <= aware < LATEST:
        raise ValueError(
            f"must be from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d} "
            "(the record holds no other time)"
        )
    return t


RecordTime = Annotated[datetime, AfterValidator(_on_record)]


class WindowParams(BaseModel):
    """``start``/``end`` (ISO 8601, UTC when no offset) or the last ``days`` days."""

    model_config = ConfigDict(extra="forbid")

    start: RecordTime | None = None
    end: RecordTime | None = None
    days: float = Field(default=7.0, gt=0, le=3660)
    station: StationId | None = None

    @model_validator(mode="after")
    def _order(self) -> WindowParams:
        if (
            self.start
            and self.end
            and self.end.replace(tzinfo=self.end.tzinfo or UTC)
            <= self.start.replace(tzinfo=self.start.tzinfo or UTC)
        ):
            raise ValueError("end must be after start")
        return self

    def window(self) -> Window:
        end = self.end or datetime.now(UTC)
        start = self.start or end - timedelta(days=self.days)
        return Window(start, end)


class YieldParams(WindowParams):
    by: list[Literal["station", "robot", "task", "policy", "day", "shift", "hour"]] = ["station"]
    robot: str | None = Field(default=None, max_length=40)
    task: str | None = Field(default=None, max_length=40)
    policy: str | None = Field(default=None, max_length=80)
    tz: str = Field(default="UTC", max_length=64)
