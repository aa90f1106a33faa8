"""What one simulated episode is: task, seed, difficulty, recipe; validated at the boundary.

Also the shipped default recipes (the sample line's windows) and the durations of the
scripted phases that cost simulated time but no policy ticks.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from robot.jobs import FastenerSpec, Side, Task

MAX_PER_SIDE = 6
MAX_SEED = 2**63 - 1


def _windows(
    side: Side, n: int, t: tuple[float, float], a: tuple[float, float]
) -> list[FastenerSpec]:
    return [
        FastenerSpec(
            position=i + 1,
            side=side,
            torque_min_nm=t[0],
            torque_max_nm=t[1],
            angle_min_deg=a[0],
            angle_max_deg=a[1],
        )
        for i in range(n)
    ]


def default_fasteners(task: Task) -> tuple[FastenerSpec, ...]:
    """The sample line's recipe for ``task``: 3+3 M8 nuts, 2+2 M6 screws, none for handling."""
    if task is Task.NUT_INSTALL:
        w = ((18.0, 26.0), (540.0, 900.0))
        return tuple(_windows(Side.LEFT, 3, *w) + _windows(Side.RIGHT, 3, *w))
    if task is Task.SCREWING:
        w = ((8.0, 12.0), (360.0, 720.0))
        return tuple(_windows(Side.LEFT, 2, *w) + _windows(Side.RIGHT, 2, *w))
    return ()


class SimConfig(BaseModel):
    """One episode's settings. ``fasteners`` None means the task's default recipe.

    ``expert_error`` False makes the scripted expert aim at the hidden truth instead of
    through its seeded perception error: a teacher for training, whose labels then carry
    no noise a policy could only memorise. The world is the same either way.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Task
    seed: int = Field(ge=0, le=MAX_SEED)
    difficulty: float = Field(default=1.0, ge=0.0, le=5.0)
    render: bool = True
    fasteners: tuple[FastenerSpec, ...] | None = None
    takt_s: float = Field(default=76.0, gt=0)
    expert_error: bool = True

    @model_validator(mode="after")
    def _fasteners_fit_task(self) -> SimConfig:
        fs = self.fasteners
        if fs is None:
            return self
        if self.task is Task.MATERIAL_HANDLING:
            if fs:
                raise ValueError("material_handling takes no fasteners; pass none")
            return self
        if not fs:
            raise ValueError(f"a {self.task.value} episode needs at least one fastener")
        seen: set[tuple[Side, int]] = set()
        for f in fs:
            key = (f.side, f.position)
            if key in seen:
                raise ValueError(f"fastener {f.side.value} {f.position} appears twice")
            seen.add(key)
            if f.torque_min_nm >= f.torque_max_nm or f.angle_min_deg >= f.angle_max_deg:
                raise ValueError(f"fastener {f.side.value} {f.position}: min must be below max")
        for side in Side:
            n = sum(1 for f in fs if f.side is side)
            if n > MAX_PER_SIDE:
                raise ValueError(
                    f"{n} fasteners on the {side.value} side; the casting has {MAX_PER_SIDE}"
                )
        return self

    def recipe(self) -> tuple[FastenerSpec, ...]:
        """The fasteners this episode installs, in the recipe's order."""
        return self.fasteners if self.fasteners is not None else default_fasteners(self.task)


@dataclass(frozen=True)
class PhaseTimes:
    """Scripted phase durations in seconds (mean, uniform jitter above it)."""

    walk_s: float  # walk or turn to the station, scan the part
    walk_jitter_s: float
    fetch_s: float  # per round: both hands to the feeders and back to the ready pose
    fetch_jitter_s: float
    misfeed_s: float  # a feeder that presented nothing: pick again
    verify_s: float  # vision check of the result and step back
    verify_jitter_s: float
    round_budget_ticks: int  # policy ticks allowed per round before a timeout


# Simulated seconds a robot takes to walk from one station to another before a job there.
# Not part of the job's cycle time: the robot worker takes it (``robot.worker.Paced``).
STATION_WALK_S = 25.0

NUT_TIMES = PhaseTimes(8.0, 1.0, 11.0, 1.0, 3.0, 8.0, 0.8, 300)
SCREW_TIMES = PhaseTimes(8.0, 1.0, 10.0, 1.0, 3.0, 7.0, 0.8, 300)
# Handling: "fetch" is the turn from conveyor to fixture carrying the casting.
HANDLING_TIMES = PhaseTimes(6.0, 1.0, 9.0, 1.5, 0.0, 5.0, 0.5, 300)
