"""The generated plant: lines of five stations, a robot per station plus a spare per line,
recipes, three shifts a day with a weekly planned stop, policy roll-outs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from robot.jobs import ErrorCode, Task

TAKT_S = 76.0
US = 1_000_000
TAKT_US = int(TAKT_S * US)
HOUR_US = 3600 * US
DAY_US = 24 * HOUR_US

# One line: nut installation, screwing, nut installation, screwing, casting transfer.
LINE_PATTERN = (
    Task.NUT_INSTALL,
    Task.SCREWING,
    Task.NUT_INSTALL,
    Task.SCREWING,
    Task.MATERIAL_HANDLING,
)
STATION_NAMES = {
    Task.NUT_INSTALL: "Dual-side nut installation",
    Task.SCREWING: "Cover screwing",
    Task.MATERIAL_HANDLING: "Casting transfer",
}
ON_NOK = {Task.NUT_INSTALL: "hold", Task.SCREWING: "retry_once", Task.MATERIAL_HANDLING: "continue"}
# (side, position, torque min, torque max, angle min, angle max)
FASTENERS = {
    Task.NUT_INSTALL: tuple(
        (side, p, 18.0, 26.0, 540.0, 900.0) for side in ("left", "right") for p in (1, 2, 3)
    ),
    Task.SCREWING: tuple(
        (side, p, 8.0, 12.0, 360.0, 720.0) for side in ("left", "right") for p in (1, 2)
    ),
    Task.MATERIAL_HANDLING: (),
}
# Failure modes by task, most frequent first (a Pareto has a head and a tail).
ERROR_WEIGHTS = {
    Task.NUT_INSTALL: (
        (ErrorCode.CROSS_THREAD, 0.38),
        (ErrorCode.MISSING_NUT, 0.24),
        (ErrorCode.UNDER_TORQUE, 0.16),
        (ErrorCode.ANGLE_HIGH, 0.12),
        (ErrorCode.STRIPPED, 0.10),
    ),
    Task.SCREWING: (
        (ErrorCode.UNDER_TORQUE, 0.35),
        (ErrorCode.CROSS_THREAD, 0.25),
        (ErrorCode.ANGLE_LOW, 0.18),
        (ErrorCode.OVER_TORQUE, 0.14),
        (ErrorCode.FASTEN_TIMEOUT, 0.08),
    ),
    Task.MATERIAL_HANDLING: (
        (ErrorCode.MISPLACED, 0.45),
        (ErrorCode.DROP, 0.30),
        (ErrorCode.HANDLING_TIMEOUT, 0.17),
        (ErrorCode.COLLISION, 0.08),
    ),
}
NOK_RATE = {Task.NUT_INSTALL: 0.022, Task.SCREWING: 0.018, Task.MATERIAL_HANDLING: 0.008}
CYCLE_S = {
    Task.NUT_INSTALL: (63.0, 2.5),
    Task.SCREWING: (57.0, 2.5),
    Task.MATERIAL_HANDLING: (46.0, 2.0),
}
# Policy versions in roll-out order with their NOK-rate factor and cycle-time change (s):
# 1.1 is really better; 1.2 is not better than 1.1, whatever a lucky week says.
POLICIES = (("vla-1.0", 1.0, 0.0), ("vla-1.1", 0.72, -1.0), ("vla-1.2", 0.74, -1.2))
TECHNICIANS = ("tech-ana", "tech-ben", "tech-cem", "tech-dora")


@dataclass(frozen=True)
class StationPlan:
    id: str
    line: str
    index: int  # position on its line, 0 first
    task: Task
    home_robot: str

    @property
    def fasteners(self) -> tuple[tuple[str, int, float, float, float, float], ...]:
        return FASTENERS[self.task]

    @property
    def on_nok(self) -> str:
        return ON_NOK[self.task]


@dataclass(frozen=True)
class PlantPlan:
    stations: tuple[StationPlan, ...]
    lines: tuple[str, ...]

    def spare(self, line: str) -> str:
        return f"{line}-R9"

    def robots(self) -> list[tuple[str, list[str]]]:
        """(robot id, skills): each station's robot is skilled for its task; spares for all."""
        out = [(s.home_robot, [s.task.value]) for s in self.stations]
        out += [(self.spare(line), [t.value for t in Task]) for line in self.lines]
        return out


def plant_plan(stations: int) -> PlantPlan:
    """``stations`` stations on lines of five (the last line may be shorter)."""
    plans = []
    for i in range(stations):
        line = f"L{i // len(LINE_PATTERN) + 1}"
        idx = i % len(LINE_PATTERN)
        plans.append(
            StationPlan(
                id=f"{line}-ST{10 * (idx + 1)}",
                line=line,
                index=idx,
                task=LINE_PATTERN[idx],
                home_robot=f"{line}-R{idx + 1}",
            )
        )
    lines = tuple(dict.fromkeys(p.line for p in plans))
    return PlantPlan(tuple(plans), lines)


def shift_rows(start: datetime, end: datetime) -> list[tuple[str, datetime, datetime]]:
    """Shifts A 06-14, B 14-22, C 22-06 (UTC) every day, except Sunday's A shift: the
    weekly planned stop."""
    out = []
    day = datetime(start.year, start.month, start.day, tzinfo=UTC) - timedelta(days=1)
    while day < end:
        for name, h in (("A", 6), ("B", 14), ("C", 22)):
            a = day + timedelta(hours=h)
            b = a + timedelta(hours=8)
            if name == "A" and a.weekday() == 6:
                continue
            if a >= start and b <= end:
                out.append((name, a, b))
        day += timedelta(days=1)
    return out


def planned_stops(start_us: int, end_us: int) -> list[tuple[int, int]]:
    """Sunday 06:00-14:00 UTC of every week in the window, as microsecond intervals."""
    out = []
    day = start_us - start_us % DAY_US
    while day < end_us:
        # 1970-01-01 was a Thursday: weekday 0 = Monday.
        if ((day // DAY_US) + 3) % 7 == 6:
            a, b = day + 6 * HOUR_US, day + 14 * HOUR_US
            if b > start_us and a < end_us:
                out.append((max(a, start_us), min(b, end_us)))
        day += DAY_US
    return out
