"""Dispatch of jobs to robot workers over Celery, awaited from asyncio.

The task id is derived from the job key, so a resend of the same job addresses the same
result, and the worker's run-once guard keeps the part from being worked twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import redis
import redis.asyncio as aioredis
from celery import Celery
from celery.result import AsyncResult
from kombu.exceptions import OperationalError
from pydantic import ValidationError
from redis.asyncio.client import PubSub

from robot.celery_app import HEARTBEAT_EVERY_S, RUN_JOB, heartbeat_key, robot_queue
from robot.jobs import ErrorCode, JobOutcome, JobSpec


def task_id(job_key: str) -> str:
    return f"job:{job_key}"


class Dispatcher:
    """Sends a ``JobSpec`` to its robot's queue and waits for the ``JobOutcome``.

    It waits on the result backend's notification (Redis pub/sub) rather than polling,
    and meanwhile watches the robot worker's heartbeat: a worker that stops beating
    mid-job (killed, crashed, powered off) ends the job NOK ``interrupted`` instead of
    leaving the station waiting for the full timeout.
    """

    def __init__(self, app: Celery, client: aioredis.Redis, *, lost_after_s: float = 2.0) -> None:
        self.app = app
        self.client = client
        self.lost_after_s = lost_after_s

    async def alive(self, robot_id: str) -> bool | None:
        """Whether the robot's worker has beaten within its heartbeat TTL; None when Redis
        cannot be asked (a broker outage says nothing about the robot)."""
        try:
            return bool(await self.client.exists(heartbeat_key(robot_id)))
        except (redis.RedisError, OSError):
            return None

    async def run(self, spec: JobSpec, timeout_s: float) -> JobOutcome:
        """The robot's outcome, or NOK ``interrupted``/``robot_timeout`` when none comes."""
        deadline = time.monotonic() + timeout_s
        channel = self.app.backend.get_key_for_task(task_id(spec.job_key))
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            with contextlib.suppress(redis.RedisError, OSError):
                await pubsub.subscribe(channel)  # before sending: no notification missed
            result = await self._send(spec, deadline)
            if result is None:
                return JobOutcome.failed(
                    spec,
                    ErrorCode.DISPATCH_FAILED,
                    "the broker did not take the job; is Redis running?",
                )
            return await self._wait(spec, result, pubsub, deadline, timeout_s)
        finally:
            with contextlib.suppress(redis.RedisError, OSError):
                await pubsub.aclose()

    async def _wait(
        self, spec: JobSpec, result: AsyncResult, pubsub: PubSub, deadline: float, timeout_s: float
    ) -> JobOutcome:
        silent_since: float | None = None
        while not await _ready(result):
            now = time.monotonic()
            if now >= deadline:
                return JobOutcome.failed(
                    spec, ErrorCode.ROBOT_TIMEOUT, f"no result within {timeout_s:.0f} s"
                )
            alive = await self.alive(spec.robot_id)
            if alive or alive is None:
                silent_since = None
            elif silent_since is None:
                silent_since = now
            elif now - silent_since >= self.lost_after_s and not await _ready(result):
                return JobOutcome.failed(
                    spec,
                    ErrorCode.INTERRUPTED,
                    f"robot {spec.robot_id}'s worker stopped answering mid-job",
                )
            try:
                if not pubsub.subscribed:  # Redis was down when the job was sent
                    await pubsub.subscribe(self.app.backend.get_key_for_task(result.id))
                # Wakes on the backend's notification; the timeout paces heartbeat checks
                # and covers a notification lost while Redis restarted.
                await pubsub.get_message(timeout=HEARTBEAT_EVERY_S)
            except (redis.RedisError, OSError):
                await asyncio.sleep(HEARTBEAT_EVERY_S)
        if result.failed():
            return JobOutcome.failed(
                spec, ErrorCode.DISPATCH_FAILED, f"worker error: {result.result!r}"
            )
        try:
            return JobOutcome.model_validate(result.result)
        except ValidationError as exc:
            return JobOutcome.failed(spec, ErrorCode.INVALID_RESULT, f"malformed result: {exc}")
        finally:
            with contextlib.suppress(redis.RedisError, OSError):
                await asyncio.to_thread(result.forget)

    async def _send(self, spec: JobSpec, deadline: float) -> AsyncResult | None:
        """Publish the job, retrying while the broker is unreachable, until ``deadline``.

        Resending is safe: the task id is the job's, and the worker runs a key once.
        """
        delay = 0.2
        while True:
            try:
                return await asyncio.to_thread(
                    self.app.send_task,
                    RUN_JOB,
                    args=[spec.model_dump(mode="json")],
                    queue=robot_queue(spec.robot_id),
                    task_id=task_id(spec.job_key),
                )
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
