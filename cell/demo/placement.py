"""Where a simulated run lies in time: in the past, beside what is already on record.

A simulated run puts hours of line time into minutes, so it cannot be stamped with the
wall clock. Its clock (``cell.line.clock.Clock``) starts in the past instead, where the
run is placed by these rules:

- it ends by the time it finishes, so nothing it writes is ever later than now and the
  queries' default windows hold it as soon as it is done;
- it does not overlap the line's record (its stations' state events, jobs and alerts;
  a shift no recorded shift either): two runs' state events interleaved would make both
  runs' availability wrong. It goes after the record when there is room before now, else
  just before the record's beginning (a run started right after another one), its clock
  never reading later than that beginning;
- the roster it works with (each robot's station, as the run finds it) is the roster the
  record says was in effect over its time, and no assignment changed there. A shift's
  supervisor moves robots during the shift and brings them back at its end, so a shift
  placed before other runs leaves their roster as they found it.

A run that cannot keep these (say the roster changed since the record's beginning and the
run does not fit after it) is refused, saying when it fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from cell.config import LineConfig
from cell.errors import Refused
from cell.record.models import Shift

HOUR = timedelta(hours=1)
# A held station waits for the simulated technician: about 5.5 min of line time.
HOLD_ALLOWANCE = timedelta(seconds=330)
# After a shift's end the line finishes its running jobs and stops: room left for that.
SHIFT_TAIL = timedelta(minutes=10)
# A fresh record's roster (each robot at its home station) is valid from this long before
# the first run, so that a shift of up to 12 h placed before that run finds it in effect.
ROSTER_LEAD = timedelta(hours=12)
ELSEWHERE = (
    "on a record of its own (from an empty directory with the embedded servers, or with "
    "another INTERN_DATABASE_URL)"
)

_LINE_SPAN = """
WITH t(at) AS (
  SELECT at FROM cell_state_events WHERE station_id = ANY(:st)
  UNION ALL SELECT started_at FROM jobs WHERE station_id = ANY(:st)
  UNION ALL SELECT ended_at FROM jobs WHERE station_id = ANY(:st)
  UNION ALL SELECT unnest(ARRAY[raised_at, acknowledged_at, reworked_at, cleared_at])
    FROM alerts WHERE station_id = ANY(:st)
)
SELECT min(at), max(at) FROM t
"""

_ROSTER_CHANGES = """
SELECT max(greatest(valid_from, valid_to)) FROM assignments WHERE robot_id = ANY(:rb)
"""

# Whether the roster in effect at :t differs from today's (the open rows), or changed
# in (:t, :u).
_ROSTER_DIFFERS = """
WITH rb AS (SELECT robot_id, station_id, valid_from, valid_to FROM assignments
            WHERE robot_id = ANY(:rb)),
at_t AS (SELECT robot_id, station_id FROM rb
         WHERE valid_from <= :t AND (valid_to IS NULL OR valid_to > :t)),
today AS (SELECT robot_id, station_id FROM rb WHERE valid_to IS NULL)
SELECT EXISTS (SELECT * FROM at_t EXCEPT SELECT * FROM today)
    OR EXISTS (SELECT * FROM today EXCEPT SELECT * FROM at_t)
    OR EXISTS (SELECT 1 FROM rb WHERE valid_from > :t AND valid_from < :u)
    OR EXISTS (SELECT 1 FROM rb WHERE valid_to > :t AND valid_to < :u)
"""

_SHIFTS_OVERLAP = """
SELECT EXISTS (SELECT 1 FROM shifts WHERE tstzrange(starts_at, ends_at) && tstzrange(:a, :b))
"""


@dataclass(frozen=True)
class Placement:
    """A run's place: its clock starts at ``origin`` and never reads later than ``limit``
    (the next record's time when placed before one; None: only the wall clock)."""

    origin: datetime
    limit: datetime | None = None


class _Record:
    """What placing a run needs to know of ``line``'s record."""

    def __init__(self, session: Session, line: LineConfig) -> None:
        self.session = session
        self.line = line
        self.robots = [r.id for r in line.robots]
        span = session.execute(text(_LINE_SPAN), {"st": [s.id for s in line.stations]}).one()
        self.first: datetime | None = span[0]
        roster = session.scalar(text(_ROSTER_CHANGES), {"rb": self.robots})
        self.last: datetime | None = max((t for t in (span[1], roster) if t), default=None)

    def before_first(self) -> datetime:
        """The latest a run placed before the record may read: just before its beginning
        (its events then sort before the record's first ones)."""
        assert self.first is not None
        return self.first - timedelta(milliseconds=1)

    def roster_holds(self, start: datetime, end: datetime) -> bool:
        """Whether today's roster was in effect, unchanged, over ``[start, end)``."""
        differs = self.session.scalar(
            text(_ROSTER_DIFFERS), {"rb": self.robots, "t": start, "u": end}
        )
        return not differs

    def shift_free(self, start: datetime, end: datetime) -> bool:
        """Whether no recorded shift overlaps ``[start, end)``."""
        return not self.session.scalar(text(_SHIFTS_OVERLAP), {"a": start, "b": end})


def place_run(session: Session, line: LineConfig, *, parts: int, now: datetime) -> Placement:
    """Where the clock of a run of ``parts`` parts per station starts.

    Parts come at the takt; the run is placed for a generous estimate of its line time
    (the line filling up, a technician's hold or two). Raises ``Refused`` when it fits
    neither after nor before the record."""
    takt = timedelta(seconds=max(r.takt_s for st in line.stations for r in st.recipes))
    estimate = 1.25 * (parts + len(line.stations)) * takt + HOLD_ALLOWANCE
    rec = _Record(session, line)
    if rec.last is None or rec.last <= now - estimate:
        return Placement(now - estimate)
    limit = rec.before_first()
    if rec.roster_holds(limit - estimate, limit):
        return Placement(limit - estimate, limit)
    raise Refused(
        f"{line.line}'s roster changed at {rec.last:%Y-%m-%d %H:%M} UTC, after the record's "
        f"beginning, and a simulated run of {parts} parts per station needs about "
        f"{_min(estimate)} of line time between that and now (a run lies in the past, "
        f"where nothing it writes is later than now or overlaps the record). Run it from "
        f"{rec.last + estimate:%H:%M} UTC, or {ELSEWHERE}."
    )


def place_shift(
    session: Session, line: LineConfig, *, hours: int, speed: float, now: datetime
) -> tuple[datetime, datetime, Placement]:
    """A shift of ``hours`` on whole UTC hours: the latest that a run at ``speed``
    starting now reaches the end of by the time it finishes, if that lies after the record;
    else the latest that ends (with room for the line to stop) before the record begins.
    Returns its start, end and the run's placement. Raises ``Refused`` when neither fits."""
    length = hours * HOUR
    wall = length / speed
    rec = _Record(session, line)
    end = _floor_hour(now + wall)
    if (rec.last is None or end - length >= rec.last) and rec.shift_free(end - length, end):
        return end - length, end, Placement(end - length)
    if rec.first is not None:
        limit = rec.before_first()
        end = _floor_hour(limit - SHIFT_TAIL)
        start = end - length
        if rec.roster_holds(start, limit) and rec.shift_free(start, end):
            return start, end, Placement(start, limit)
    last = rec.last or now
    free = _ceil_hour(last)
    raise Refused(
        f"a simulated {hours} h shift lies on whole UTC hours in the past, where nothing it "
        f"writes is later than now and it overlaps neither {line.line}'s record (to "
        f"{last:%Y-%m-%d %H:%M} UTC, the roster changed since its beginning) nor a "
        f"recorded shift: the first {hours} h free are {free:%H:%M} to "
        f"{free + length:%H:%M} UTC, which a run at {speed:g}x can fill from "
        f"{free + length - wall:%Y-%m-%d %H:%M} UTC. Run it then, or {ELSEWHERE}."
    )


def roster_from(placement: Placement) -> datetime:
    """When a fresh record's roster begins, for a run placed at ``placement``."""
    return placement.origin - ROSTER_LEAD


def record_shift(session: Session, name: str, start: datetime, end: datetime) -> None:
    session.add(Shift(name=name, starts_at=start, ends_at=end))
    session.commit()


def _floor_hour(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _ceil_hour(t: datetime) -> datetime:
    f = _floor_hour(t)
    return f if f == t else f + HOUR


def _min(d: timedelta) -> str:
    return f"{math.ceil(d.total_seconds() / 60)} min"
