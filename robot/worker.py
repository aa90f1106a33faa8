"""A robot's Celery worker: consumes ``robot.<id>``, runs each job once on its robot.

Run-once guard: before running, the worker claims the job key in Redis with SET NX. A
second delivery of the same key (broker redelivery, a retry, a restarted worker) never
runs the job again: it waits for the first run's stored outcome and returns it, or, if
the first run died, answers NOK ``interrupted`` without touching the part.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from celery import Celery

from robot.celery_app import (
    HEARTBEAT_EVERY_S,
    HEARTBEAT_TTL_S,
    RUN_JOB,
    heartbeat_key,
    make_celery,
    robot_queue,
)
from robot.jobs import ErrorCode, JobOutcome, JobSpec, Outcome

log = logging.getLogger(__name__)

GUARD_TTL_S = 7 * 24 * 3600
RUNNING = "running"


def guard_key(job_key: str) -> str:
    return f"intern:run:{job_key}"


class RunOnce:
    """The Redis-backed run-once guard for job keys."""

    def __init__(self, client: redis.Redis, worker_id: str) -> None:
        self.client = client
        self.worker_id = worker_id

    def claim(self, job_key: str) -> bool:
        """True if this worker now owns the job; False if any run claimed it before."""
        value = json.dumps({"state": RUNNING, "worker": self.worker_id, "at": time.time()})
        return bool(self.client.set(guard_key(job_key), value, nx=True, ex=GUARD_TTL_S))

    def finish(self, outcome: JobOutcome, deadline_s: float = 60.0) -> None:
        """Store the outcome under the job key, retrying while Redis is unreachable."""
        value = json.dumps({"state": "done", "outcome": outcome.model_dump(mode="json")})
        end = time.monotonic() + deadline_s
        while True:
            try:
                self.client.set(guard_key(outcome.job_key), value, ex=GUARD_TTL_S)
                return
            except redis.ConnectionError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.5)

    def previous(self, job_key: str) -> dict[str, Any] | None:
        raw = self.client.get(guard_key(job_key))
        return json.loads(raw) if raw else None


def _interrupted(spec: JobSpec, detail: str) -> JobOutcome:
    return JobOutcome(
        job_key=spec.job_key,
        robot_id=spec.robot_id,
        outcome=Outcome.NOK,
        error_code=int(ErrorCode.INTERRUPTED),
        cycle_time_ms=0,
        detail=detail,
    )


def execute_once(
    guard: RunOnce, spec: JobSpec, runner: Callable[[JobSpec], JobOutcome]
) -> JobOutcome:
    """Run ``spec`` through ``runner`` unless its key was claimed before (see module doc).

    A robot has one worker with concurrency 1, so a claim that is still "running" when
    the job arrives again belongs to a run that died: the part may be half done.
    """
    if guard.claim(spec.job_key):
        try:
            outcome = runner(spec)
        except Exception as exc:  # a crashed skill is a NOK job, recorded, not a lost one
            log.exception("job %s failed in the robot runtime", spec.job_key)
            outcome = _interrupted(spec, f"robot runtime error: {type(exc).__name__}: {exc}")
        guard.finish(outcome)
        return outcome
    prev = guard.previous(spec.job_key)
    if prev is not None and prev.get("state") == "done":
        return JobOutcome.model_validate(prev["outcome"])
    return _interrupted(spec, "job was started before and did not finish; not run again")


def paced(
    runner: Callable[[JobSpec], JobOutcome], time_scale: float
) -> Callable[[JobSpec], JobOutcome]:
    """A runner that takes the job's cycle time (divided by ``time_scale``) in wall time,
    as a physical robot would, so the worker is busy for as long as the job lasts."""

    def run(spec: JobSpec) -> JobOutcome:
        t0 = time.monotonic()
        outcome = runner(spec)
        rest = outcome.cycle_time_ms / 1000 / time_scale - (time.monotonic() - t0)
        if rest > 0:
            time.sleep(rest)
        return outcome

    return run


def build_worker_app(
    redis_url: str,
    robot_id: str,
    runner: Callable[[JobSpec], JobOutcome] | None = None,
    *,
    worker_id: str | None = None,
    time_scale: float | None = None,
) -> Celery:
    """The Celery app of one robot's worker, with the run-job task registered.

    ``time_scale`` paces simulated jobs: each takes its cycle time / scale of wall time.
    """
    if runner is None:
        from robot.skills import run_job

        runner = run_job
    if time_scale is not None:
        runner = paced(runner, time_scale)
    app = make_celery(redis_url)
    app.conf.task_default_queue = robot_queue(robot_id)
    client = redis.Redis.from_url(redis_url)
    guard = RunOnce(client, worker_id or f"{robot_id}-{time.time_ns()}")

    @app.task(name=RUN_JOB)
    def run_job_task(spec_data: dict[str, Any]) -> dict[str, Any]:
        spec = JobSpec.model_validate(spec_data)
        if spec.robot_id != robot_id:
            outcome = JobOutcome(
                job_key=spec.job_key,
                robot_id=robot_id,
                outcome=Outcome.NOK,
                error_code=int(ErrorCode.DISPATCH_FAILED),
                cycle_time_ms=0,
                detail=f"job for robot {spec.robot_id} reached the queue of robot {robot_id}",
            )
        else:
            outcome = execute_once(guard, spec, runner)
        return outcome.model_dump(mode="json")

    return app


class Heartbeat(threading.Thread):
    """Refreshes the robot's heartbeat key while the process lives (also during a job:
    the solo pool runs jobs on the main thread). A killed worker's key expires."""

    def __init__(self, redis_url: str, robot_id: str) -> None:
        super().__init__(name=f"heartbeat-{robot_id}", daemon=True)
        self.client = redis.Redis.from_url(redis_url, socket_timeout=2.0)
        self.key = heartbeat_key(robot_id)
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.client.set(
                    self.key,
                    json.dumps({"pid": os.getpid(), "at": time.time()}),
                    px=int(HEARTBEAT_TTL_S * 1000),
                )
            except redis.RedisError as exc:  # Redis restarting: try again next beat
                log.warning("heartbeat not sent: %s", exc)
            self.stopped.wait(HEARTBEAT_EVERY_S)


def run_worker(
    redis_url: str,
    robot_id: str,
    loglevel: str = "INFO",
    time_scale: float | None = None,
    policy: str = "auto",
    policy_token: str | None = None,
) -> None:
    """Run the worker in this process until it is stopped (concurrency 1, solo pool).

    ``policy`` names what drives the robot (``robot.sources``: expert, auto or a server).
    """
    from robot.sources import job_runner

    runner = job_runner(policy, token=policy_token)
    app = build_worker_app(redis_url, robot_id, runner, time_scale=time_scale)
    beat = Heartbeat(redis_url, robot_id)
    beat.start()
    app.worker_main(
        [
            "worker",
            "--queues",
            robot_queue(robot_id),
            "--pool",
            "solo",
            "--concurrency",
            "1",
            "--hostname",
            f"robot-{robot_id}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            loglevel,
        ]
    )
