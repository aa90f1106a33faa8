"""Dispatch of jobs to robot workers over Celery, awaited from asyncio.

The task id is derived from the job key, so a resend of the same job addresses the same
result, and the worker's run-once guard keeps the part from being worked twice.
"""

from __future__ import annotations

import asyncio
import time

import redis
from celery import Celery
from celery.result import AsyncResult
from kombu.exceptions import OperationalError
from pydantic import ValidationError

from robot.celery_app import HEARTBEAT_EVERY_S, RUN_JOB, heartbeat_key, robot_queue
from robot.jobs import ErrorCode, JobOutcome, JobSpec, Outcome


def task_id(job_key: str) -> str:
    return f"job:{job_key}"


class Dispatcher:
    """Sends a ``JobSpec`` to its robot's queue and waits for the ``JobOutcome``.

    While waiting it watches the robot worker's heartbeat: a worker that stops beating
    mid-job (killed, crashed, powered off) ends the job NOK ``interrupted`` instead of
    leaving the station waiting for the full timeout.
    """

    def __init__(self, app: Celery, client: redis.Redis, *, poll_s: float = 0.02,
                 lost_after_s: float = 2.0) -> None:
        self.app = app
        self.client = client
        self.poll_s = poll_s
        self.lost_after_s = lost_after_s

    async def alive(self, robot_id: str) -> bool | None:
        """Whether the robot's worker has beaten within its heartbeat TTL; None when Redis
        cannot be asked (a broker outage says nothing about the robot)."""
        try:
            return bool(await asyncio.to_thread(self.client.exists, heartbeat_key(robot_id)))
        except (redis.RedisError, OSError):
            return None

    async def run(self, spec: JobSpec, timeout_s: float) -> JobOutcome:
        """The robot's outcome, or NOK ``interrupted``/``robot_timeout`` when none comes."""
        deadline = time.monotonic() + timeout_s
        result = await self._send(spec, deadline)
        if result is None:
            return _failed(spec, ErrorCode.DISPATCH_FAILED,
                           "the broker did not take the job; is Redis running?")
        next_check = time.monotonic() + HEARTBEAT_EVERY_S
        silent_since: float | None = None
        while time.monotonic() < deadline:
            # ready() is a single GET on the result backend; cheap to poll from a thread.
            if await _ready(result):
                break
            now = time.monotonic()
            if now >= next_check:
                next_check = now + HEARTBEAT_EVERY_S
                alive = await self.alive(spec.robot_id)
                if alive or alive is None:
                    silent_since = None
                elif silent_since is None:
                    silent_since = now
                elif now - silent_since >= self.lost_after_s and not await _ready(result):
                    return _failed(spec, ErrorCode.INTERRUPTED,
                                   f"robot {spec.robot_id}'s worker stopped answering mid-job")
            await asyncio.sleep(self.poll_s)
        else:
            return _failed(spec, ErrorCode.ROBOT_TIMEOUT, f"no result within {timeout_s:.0f} s")
        if result.failed():
            return _failed(spec, ErrorCode.DISPATCH_FAILED, f"worker error: {result.result!r}")
        try:
            return JobOutcome.model_validate(result.result)
        except ValidationError as exc:
            return _failed(spec, ErrorCode.INVALID_RESULT, f"malformed result: {exc}")
        finally:
            result.forget()


    async def _send(self, spec: JobSpec, deadline: float) -> AsyncResult | None:
        """Publish the job, retrying while the broker is unreachable, until ``deadline``.

        Resending is safe: the task id is the job's, and the worker runs a key once.
        """
        delay = 0.2
        while True:
            try:
                return await asyncio.to_thread(
                    self.app.send_task, RUN_JOB, args=[spec.model_dump(mode="json")],
                    queue=robot_queue(spec.robot_id), task_id=task_id(spec.job_key))
            except (OperationalError, redis.RedisError, OSError):
                if time.monotonic() + delay > deadline:
                    return None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


async def _ready(result: AsyncResult) -> bool:
    try:
        return bool(await asyncio.to_thread(result.ready))
    except (redis.RedisError, OSError):  # broker restarting: not ready yet
        return False


def _failed(spec: JobSpec, code: ErrorCode, detail: str) -> JobOutcome:
    return JobOutcome(
        job_key=spec.job_key,
        robot_id=spec.robot_id,
        outcome=Outcome.NOK,
        error_code=int(code),
        cycle_time_ms=0,
        detail=detail,
    )
