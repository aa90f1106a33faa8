"""How chunks are executed (``ExecConfig``, one of the ``ExecMode`` methods) and what a run
counted (``ExecStats``): the settings and figures that the scheduler
(``policy.chunking``), both executors, evaluation, training and the bench share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from policy.base import MAX_REPLAN_AGE
from robot.schema import CONTROL_HZ

#: How old the running actions get before the next chunk is requested, asynchronously, for
#: a policy that does not say. At 80 ms this is the 5 ticks after each takeover plus the
#: delay; on 100 held-out seeds each, 11 instead lost screwing (88 % to 83 %) and material
#: handling (93 % to 87 %) parts, while nut installation gained speed with none lost.
DEFAULT_REPLAN_AGE = 8
#: The delay, in ticks, from which chunks are requested as they arrive (continuous
#: inference) rather than at the replan age: a replan age tuned at 80 ms lets actions run
#: ``replan_age + d - 1`` ticks after their look, too old to start a thread or set down a
#: casting once ``d`` is long. On 50 seeds each, requesting at arrival kept as many parts
#: or more in 17 of 18 runs (three tasks, six delays from 160 ms on): nut installation 45
#: against 38 at 200 ms (134 against 111 of 150 over three seed ranges), material
#: handling 37 against 24; below 5 ticks it lost them (material handling 11 against 47
#: at 120 ms).
CONTINUOUS_FROM_TICKS = 5


class ExecMode(StrEnum):
    PREFIX = "prefix"
    NAIVE = "naive"
    BLEND = "blend"
    SYNC = "sync"
    RTC = "rtc"


class ExecConfig(BaseModel):
    """How chunks are executed. ``staleness_ticks`` bounds the age of any executed action."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: ExecMode = ExecMode.PREFIX
    hz: float = Field(default=float(CONTROL_HZ), gt=0, le=2000)
    replan_every: int = Field(
        default=5, ge=1, description="sync: rows each chunk runs before the arm holds for the next"
    )
    replan_age: int | None = Field(
        default=None,
        ge=1,
        le=MAX_REPLAN_AGE,
        description="asynchronous modes: request the next chunk once the running actions are "
        "this many ticks older than their observation (None: the policy's own, else "
        f"{DEFAULT_REPLAN_AGE})",
    )
    continuous_from_ticks: int = Field(
        default=CONTINUOUS_FROM_TICKS,
        ge=0,
        le=MAX_REPLAN_AGE,
        description="asynchronous modes: from this estimated delay (ticks) on, the next "
        "chunk is requested as soon as the running one arrives, so no action runs older "
        "than twice the delay (0: always at the replan age)",
    )
    max_prefix: int = Field(default=8, ge=0, description="longest prefix the model accepts")
    join_ticks: int | None = Field(
        default=None,
        ge=0,
        le=MAX_REPLAN_AGE,
        description="prefix: ticks over which the step into a new chunk's own actions is "
        "spread, the arm ending where the chunk puts it (0: switch outright; None: the "
        "policy's own, else 0)",
    )
    staleness_ticks: int = Field(default=29, ge=0)
    accel_limit: float = Field(
        default=0.5, gt=0, description="max change per tick, as a fraction of the speed limit"
    )
    blend_ticks: int = Field(default=5, ge=1)
    guidance_scale: float = Field(
        default=1.0, ge=0, description="rtc: clip of the guidance scale (0: plain sampling)"
    )
    guide_rows: int = Field(
        default=30,
        ge=0,
        description="rtc: rows of the current plan, past the frozen ones, that guide",
    )
    latency_window: int = Field(default=16, ge=1)
    latency_quantile: float = Field(
        default=0.75, ge=0, le=1, description="delay estimate: this quantile of the window"
    )
    initial_latency_s: float = Field(default=0.1, ge=0)
    hold_tool: Literal["keep", "zero"] = "keep"

    @property
    def dt(self) -> float:
        return 1.0 / self.hz

    def settled_replan_age(self, policy: object = None) -> int:
        """The replan age to run: this config's, else ``policy.replan_age`` (a checkpoint
        may say how long its chunks should run), else ``DEFAULT_REPLAN_AGE``."""
        return self.replan_age or getattr(policy, "replan_age", None) or DEFAULT_REPLAN_AGE

    def settled_join_ticks(self, policy: object = None) -> int:
        """The join to run: this config's, else ``policy.join_ticks``, else 0 (switch
        outright). Joining is the policy's to say: over 6 ticks it smoothed nut
        installation with no parts lost, but cost material handling parts (94 % to 89.5 %
        on 200 seeds)."""
        if self.join_ticks is not None:
            return self.join_ticks
        own = getattr(policy, "join_ticks", None)
        return 0 if own is None else int(own)

    def for_policy(self, policy: object) -> ExecConfig:
        """This config with ``replan_age`` and ``join_ticks`` settled for ``policy``
        (``settled_replan_age``, ``settled_join_ticks``)."""
        return self.model_copy(
            update={
                "replan_age": self.settled_replan_age(policy),
                "join_ticks": self.settled_join_ticks(policy),
            }
        )


@dataclass
class ExecStats:
    """Counters of one run. Ages are in ticks since the observation an action came from."""

    ticks: int = 0
    startup_ticks: int = 0
    empty_queue_ticks: int = 0
    sync_wait_ticks: int = 0
    requests: int = 0
    chunks_used: int = 0
    dropped_observations: int = 0
    dropped_chunks: int = 0
    deadline_misses: int = 0
    action_ages: list[int] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    boundary_jumps: list[float] = field(default_factory=list)
    within_steps: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        ages = np.asarray(self.action_ages or [0])
        steps = np.asarray(self.within_steps or [0.0])
        jumps = np.asarray(self.boundary_jumps or [0.0])
        typical = float(np.median(steps[steps > 0])) if np.any(steps > 0) else 0.0
        return {
            "ticks": self.ticks,
            "startup_ticks": self.startup_ticks,
            "empty_queue_ticks": self.empty_queue_ticks,
            "sync_wait_ticks": self.sync_wait_ticks,
            "requests": self.requests,
            "chunks_used": self.chunks_used,
            "dropped_observations": self.dropped_observations,
            "dropped_chunks": self.dropped_chunks,
            "deadline_misses": self.deadline_misses,
            "max_action_age": int(ages.max()),
            "mean_action_age": float(ages.mean()),
            "boundary_jump_mean": float(jumps.mean()),
            "within_step_median": typical,
        }
