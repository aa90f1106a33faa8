"""Dispatch of jobs to robot workers over Celery, awaited from asyncio.

The task id is derived from the job key, so a resend of the same job addresses the same
result, and the worker's run-once guard keeps the part from being worked twice.
"""

from __future__ import annotations

import asyncio
import time

from celery import Celery
from pydantic import ValidationError

from robot.celery_app import RUN_JOB, robot_queue
from robot.jobs import ErrorCode, JobOutcome, JobSpec, Outcome


def task_id(job_key: str) -> str:
    return f"job:{job_key}"


class Dispatcher:
    """Sends a ``JobSpec`` to its robot's queue and waits for the ``JobOutcome``."""

    def __init__(self, app: Celery, *, poll_s: float = 0.02) -> None:
        self.app = app
        self.poll_s = poll_s

    async def run(self, spec: JobSpec, timeout_s: float) -> JobOutcome:
        """The robot's outcome, or NOK ``robot_timeout`` when none arrives in ``timeout_s``."""
        result = await asyncio.to_thread(
            self.app.send_task,
            RUN_JOB,
            args=[spec.model_dump(mode="json")],
            queue=robot_queue(spec.robot_id),
            task_id=task_id(spec.job_key),
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            # ready() is a single GET on the result backend; cheap to poll from a thread.
            if await asyncio.to_thread(result.ready):
                break
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


def _failed(spec: JobSpec, code: ErrorCode, detail: str) -> JobOutcome:
    return JobOutcome(
        job_key=spec.job_key,
        robot_id=spec.robot_id,
        outcome=Outcome.NOK,
        error_code=int(code),
        cycle_time_ms=0,
        detail=detail,
    )
