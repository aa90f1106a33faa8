"""What crosses the wire between the cell and a robot worker: a job and its outcome.

Both are plain pydantic models serialised as JSON (never pickle). The cell builds a
``JobSpec`` from the station's recipe; the worker runs it on its robot and answers with a
``JobOutcome``. This module imports neither torch nor SQL so that both sides can use it.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Task(StrEnum):
    """The kinds of work a humanoid does at a station."""

    NUT_INSTALL = "nut_install"
    SCREWING = "screwing"
    MATERIAL_HANDLING = "material_handling"


class Side(StrEnum):
    """Which side of the casting a fastener is on (dual-side nut installation uses both)."""

    LEFT = "left"
    RIGHT = "right"


class Outcome(StrEnum):
    OK = "ok"
    NOK = "nok"


class ErrorCode(IntEnum):
    """Failure codes published in the PLC's ``ErrorCode`` tag and stored on job rows.

    1xx come from the cell (bad input, dispatch), 2xx from fastening, 3xx from handling.
    """

    NONE = 0
    EMPTY_PART_ID = 101
    UNKNOWN_PROGRAM = 102
    NO_ROBOT = 103
    DISPATCH_FAILED = 104
    INTERRUPTED = 105
    ROBOT_TIMEOUT = 106
    INVALID_RESULT = 107
    INVALID_PART_ID = 108
    STOPPED = 109  # the robot stopped at a safe point when the cell asked; fasteners: done
    ABANDONED = 110  # the PLC moved on before the result; what the robot did is on record
    CROSS_THREAD = 201
    MISSING_NUT = 202
    STRIPPED = 203
    UNDER_TORQUE = 204
    OVER_TORQUE = 205
    ANGLE_LOW = 206
    ANGLE_HIGH = 207
    FASTEN_TIMEOUT = 208
    DROP = 301
    MISPLACED = 302
    COLLISION = 303
    HANDLING_TIMEOUT = 304


class FastenerSpec(BaseModel):
    """One fastener position of a recipe with its acceptance windows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    position: int = Field(ge=1, description="1-based position number on its side")
    side: Side
    torque_min_nm: float = Field(gt=0)
    torque_max_nm: float = Field(gt=0)
    angle_min_deg: float = Field(ge=0)
    angle_max_deg: float = Field(gt=0)


class JobSpec(BaseModel):
    """A job as the worker receives it.

    ``job_key`` identifies the PLC job (station, counter epoch, JobSeq) and is what the
    worker's run-once guard keys on: a second delivery of the same key never runs again.
    ``policy_version`` names the checkpoint to run (a canary rollout's arm, a station's
    promoted version); a worker that cannot load it ends the job NOK without touching
    the part.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_key: str = Field(min_length=1, max_length=200)
    station_id: str
    robot_id: str
    part_id: str
    program_no: int
    task: Task
    fasteners: tuple[FastenerSpec, ...] = ()
    takt_s: float = Field(gt=0)
    seed: int = Field(ge=0)
    difficulty: float = Field(default=1.0, ge=0.0, le=5.0)
    # The policy version (checkpoint content hash) to run; None: the worker's default.
    policy_version: str | None = Field(default=None, min_length=1, max_length=64)


class FastenerResult(BaseModel):
    """One fastener as it was driven: final values, status and the torque-angle trace."""

    model_config = ConfigDict(extra="forbid")

    position: int
    side: Side
    torque_nm: float
    angle_deg: float
    torque_min_nm: float
    torque_max_nm: float
    angle_min_deg: float
    angle_max_deg: float
    ok: bool
    error_code: int = 0
    trace_angle_deg: list[float] = Field(default_factory=list)
    trace_torque_nm: list[float] = Field(default_factory=list)


class EpisodeRef(BaseModel):
    """Where a job's recorded episode is kept: ``path`` relative to the episode store
    (``robot.job_episodes``), its control ticks and its size on disk."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1, max_length=400)
    frames: int = Field(ge=0)
    bytes: int = Field(ge=0)


class JobOutcome(BaseModel):
    """What the robot did with a job. ``cycle_time_ms`` is the robot's working time;
    ``walk_ms`` the time it walked from another station before it (not in the cycle);
    ``episode`` the job's recorded episode, where the worker kept one."""

    model_config = ConfigDict(extra="forbid")

    job_key: str
    robot_id: str
    outcome: Outcome
    error_code: int = 0
    cycle_time_ms: int = Field(ge=0)
    walk_ms: int = Field(default=0, ge=0)
    policy_version: str = "expert"
    fasteners: list[FastenerResult] = Field(default_factory=list)
    detail: str = ""
    episode: EpisodeRef | None = None

    @classmethod
    def failed(
        cls, spec: JobSpec, code: ErrorCode, detail: str, *, robot_id: str | None = None
    ) -> JobOutcome:
        """A NOK outcome for a job the robot did not work on (cycle time 0)."""
        return cls(
            job_key=spec.job_key,
            robot_id=robot_id or spec.robot_id,
            outcome=Outcome.NOK,
            error_code=int(code),
            cycle_time_ms=0,
            detail=detail,
        )
