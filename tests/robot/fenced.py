"""Sending one job to a worker process the way the cell does: a fence issued in Redis,
then the Celery message; the outcome read from the fence's record."""

from __future__ import annotations

import asyncio
import time
import uuid

import redis
import redis.asyncio as aioredis

from robot.celery_app import RUN_JOB, make_celery, robot_queue
from robot.fence import CellFences, record_key
from robot.jobs import FastenerResult, JobOutcome, JobSpec, Side


def run_fenced(redis_url: str, spec: JobSpec, timeout_s: float) -> JobOutcome:
    """Issue a fence for ``spec``, send it to its robot's queue and wait for the outcome
    the worker stores under the fence (AssertionError after ``timeout_s``)."""
    fence = uuid.uuid4().hex

    async def issue() -> str:
        cell = aioredis.Redis.from_url(redis_url)
        try:
            return await CellFences(cell).issue(spec.job_key, fence, spec.robot_id, spec.part_id)
        finally:
            await cell.aclose()

    client = redis.Redis.from_url(redis_url)
    client.delete(record_key(spec.job_key))
    assert asyncio.run(issue()) == "issued"
    app = make_celery(redis_url)
    try:
        args = [spec.model_dump(mode="json"), fence]
        app.send_task(RUN_JOB, args=args, queue=robot_queue(spec.robot_id))
        end = time.monotonic() + timeout_s
        while client.hget(record_key(spec.job_key), "state") != b"done":
            assert time.monotonic() < end, f"no outcome for {spec.job_key} in {timeout_s} s"
            time.sleep(0.2)
        return JobOutcome.model_validate_json(client.hget(record_key(spec.job_key), "outcome"))
    finally:
        app.close()
        client.close()


def driven(n: int) -> list[FastenerResult]:
    """``n`` good fasteners on the left side, as a robot reports them."""
    return [
        FastenerResult(
            position=i,
            side=Side.LEFT,
            torque_nm=5.0,
            angle_deg=300.0,
            torque_min_nm=4.0,
            torque_max_nm=6.0,
            angle_min_deg=200.0,
            angle_max_deg=400.0,
            ok=True,
        )
        for i in range(1, n + 1)
    ]
