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


def cell_says(client: redis.Redis, method: str, key: str, *args: str) -> str:
    """What the cell's side of the fences (``CellFences.<method>(key, *args)``) answers,
    on the Redis database ``client`` talks to."""

    async def ask() -> str:
        kw = client.connection_pool.connection_kwargs
        cell = aioredis.Redis(host=kw["host"], port=kw["port"], db=kw.get("db", 0))
        try:
            answer: str = await getattr(CellFences(cell), method)(key, *args)
            return answer
        finally:
            await cell.aclose()

    return asyncio.run(ask())


def send_fenced(client: redis.Redis, spec: JobSpec) -> None:
    """Issue a fresh fence for ``spec`` and send the job to its robot's queue."""
    fence = uuid.uuid4().hex
    client.delete(record_key(spec.job_key))
    assert cell_says(client, "issue", spec.job_key, fence, spec.robot_id, spec.part_id) == (
        "issued"
    )
    app = make_celery(_url(client))
    try:
        args = [spec.model_dump(mode="json"), fence]
        app.send_task(RUN_JOB, args=args, queue=robot_queue(spec.robot_id))
    finally:
        app.close()


def stored_outcome(client: redis.Redis, key: str, deadline: float) -> JobOutcome:
    """The outcome the worker stores under ``key``'s fence, waited for until
    ``deadline`` (monotonic; AssertionError after it)."""
    while client.hget(record_key(key), "state") != b"done":
        assert time.monotonic() < deadline, f"no outcome for {key} in time"
        time.sleep(0.2)
    raw = client.hget(record_key(key), "outcome")
    assert raw is not None
    return JobOutcome.model_validate_json(raw)


def run_fenced(redis_url: str, spec: JobSpec, timeout_s: float) -> JobOutcome:
    """Send ``spec`` as the cell does and wait for its outcome (see ``stored_outcome``)."""
    client = redis.Redis.from_url(redis_url)
    try:
        send_fenced(client, spec)
        return stored_outcome(client, spec.job_key, time.monotonic() + timeout_s)
    finally:
        client.close()


def _url(client: redis.Redis) -> str:
    kw = client.connection_pool.connection_kwargs
    return f"redis://{kw['host']}:{kw['port']}/{kw.get('db', 0)}"


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
