"""A job's attempts on the robot: the spec sent, the second attempt a recipe allows, and
a robot that went offline before it took the job.

Every attempt has its own job key (``station:epoch:JobSeq``, then ``...:2``) and goes
through ``Dispatcher.run``, which answers from the key's fence whatever happened before:
so the same code serves a new job and one found unanswered after a restart.

Each job names the policy version its route gives (``cell.line.rollout_arm``), chosen
once per PLC job on the first attempt's key, so a retry runs the same version; once the
job is recorded, ``recorded`` hands a rollout's job to the rollout's bookkeeping.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from cell.config import Recipe
from cell.line.dispatch import Abandoned, Dispatcher
from cell.line.rollout_arm import Route, StationRouting
from cell.record.jobs import JobRecord
from robot.fence import FenceState
from robot.jobs import ErrorCode, JobOutcome, JobSpec

NOT_RETRIED = {
    int(ErrorCode.INTERRUPTED),
    int(ErrorCode.ROBOT_TIMEOUT),
    int(ErrorCode.DISPATCH_FAILED),
    int(ErrorCode.MISSING_NUT),
    int(ErrorCode.STOPPED),
    int(ErrorCode.ABANDONED),
}


def seed(key: str) -> int:
    """A stable per-job seed for the simulated robot, from the job key."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")


class Ran(NamedTuple):
    """A PLC job's last attempt's outcome, its number, and the earlier attempts'."""

    outcome: JobOutcome
    attempt: int
    earlier: tuple[JobOutcome, ...] = ()


def retry_key(key: str) -> str:
    """The job key of the second attempt."""
    return f"{key}:2"


@dataclass
class Attempts:
    """Runs one PLC job's attempts on the station's robot."""

    dispatcher: Dispatcher
    station_id: str
    timeout_s: float
    await_robot: Callable[[], Awaitable[str]]  # the serving robot, holding while none
    routing: StationRouting | None = None  # None: every job runs the worker's default
    _routes: dict[str, Route] = field(default_factory=dict)  # first key -> route, until recorded

    async def holder(self, key: str) -> str | None:
        """The robot that took job ``key`` before (claimed or finished it), if any: after
        a restart the cell waits for that robot, whoever serves the station now."""
        view = await self.dispatcher.view(key)
        taken = (FenceState.CLAIMED, FenceState.DONE, FenceState.LOST)
        return view.robot_id if view.state in taken else None

    async def run(
        self, key: str, part_id: str, recipe: Recipe, robot_id: str, abandoned: Abandoned
    ) -> Ran:
        """The job's outcome and which attempt it is (2 if the recipe's ``retry_once``
        ran it again after a retryable NOK, with the first attempt's outcome)."""
        route = Route(None)
        if self.routing is not None:
            route = await asyncio.to_thread(self.routing.route, key)
        self._routes[key] = route
        version = route.version
        outcome = await self._one(key, part_id, recipe, robot_id, abandoned, version)
        if (
            outcome.error_code
            and recipe.on_nok == "retry_once"
            and outcome.error_code not in NOT_RETRIED
            and not abandoned()
        ):
            again = retry_key(key)
            retried = await self._one(again, part_id, recipe, outcome.robot_id, abandoned, version)
            return Ran(retried, 2, (outcome,))
        return Ran(outcome, 1)

    def recorded(self, rec: JobRecord, where: str) -> None:
        """The job ``rec`` is durable (``where``: db or outbox): settle its rollout arm,
        if it ran in one, without waiting for it."""
        route = self._routes.pop(f"{rec.station_id}:{rec.epoch}:{rec.job_seq}", None)
        if route is not None and self.routing is not None:
            self.routing.settle_later(route, rec, where)

    async def _one(
        self,
        key: str,
        part_id: str,
        recipe: Recipe,
        robot_id: str,
        abandoned: Abandoned,
        version: str | None,
    ) -> JobOutcome:
        while True:
            spec = JobSpec(
                job_key=key,
                station_id=self.station_id,
                robot_id=robot_id,
                part_id=part_id,
                program_no=recipe.program_no,
                task=recipe.task,
                fasteners=recipe.fasteners,
                takt_s=recipe.takt_s,
                seed=seed(key),
                difficulty=recipe.difficulty,
                policy_version=version,
            )
            outcome = await self.dispatcher.run(spec, self.timeout_s, abandoned)
            if outcome is not None:
                return outcome
            # No live worker took it and nothing was done: wait for a robot, send again.
            robot_id = await self.await_robot()
