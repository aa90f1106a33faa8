"""A robot's Celery worker: consumes ``robot.<id>``, runs each job once on its robot.

Run-once guard: before running, the worker claims the job key in Redis with SET NX. A
second delivery of the same key (broker redelivery, a retry, a restarted worker) never
runs the job again: it waits for the first run's stored outcome and returns it, or, if
the first run died, answers NOK ``interrupted`` without touching the part.

What drives the robot is handed in by the composition root (``intern worker``): a
``PolicyForJob`` (``robot.chunk_policy``) choosing each job's policy, or nothing, and the
robot's own scripted program runs every job. A simulated robot is paced like a physical
one (``Paced``): it walks to a new station and works for the job's cycle time.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import redis
from celery import Celery
from celery.signals import setup_logging

from robot.celery_app import (
    HEARTBEAT_EVERY_S,
    HEARTBEAT_TTL_S,
    RUN_JOB,
    heartbeat_key,
    make_celery,
    robot_queue,
)
from robot.chunk_policy import ChunkPolicy, PolicyForJob
from robot.jobs import ErrorCode, JobOutcome, JobSpec, Outcome
from robot.schema import Observation
from robot.sim.config import STATION_WALK_S
from robot.skills import make_runner, run_job
from robot.telemetry import Samples

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


class Paced:
    """A runner paced like a physical robot, so the worker is busy as long as it would be.

    Before a job at another station than the robot's last job it walks there:
    ``walk_s`` simulated seconds (``STATION_WALK_S``), recorded in the outcome's
    ``walk_ms`` and logged. Then the job takes its cycle time in wall time. Both are
    divided by ``time_scale``; the cycle time on record stays the job's own. ``station``
    is where the robot is (None before its first job; kept in this process).
    """

    def __init__(
        self,
        runner: Callable[[JobSpec], JobOutcome],
        time_scale: float,
        walk_s: float = STATION_WALK_S,
    ) -> None:
        self.runner = runner
        self.time_scale = time_scale
        self.walk_s = walk_s
        self.station: str | None = None

    def __call__(self, spec: JobSpec) -> JobOutcome:
        came_from, self.station = self.station, spec.station_id
        walk_s = self.walk_s if came_from is not None and came_from != spec.station_id else 0.0
        if walk_s:
            log.info(
                "robot %s walks from %s to %s (%.0f s simulated) before job %s",
                spec.robot_id,
                came_from,
                spec.station_id,
                walk_s,
                spec.job_key,
            )
            time.sleep(walk_s / self.time_scale)
        t0 = time.monotonic()
        outcome = self.runner(spec)
        rest = outcome.cycle_time_ms / 1000 / self.time_scale - (time.monotonic() - t0)
        if rest > 0:
            time.sleep(rest)
        if walk_s:
            outcome = outcome.model_copy(update={"walk_ms": round(walk_s * 1000)})
        return outcome


class MeasuredPolicy:
    """A ``ChunkPolicy`` that adds each inference's wall time to ``samples``
    (``policy_inference_seconds``) and the executor's deadline misses, read from the
    wrapped policy's ``stats.deadline_misses`` where it keeps them
    (``policy_deadline_misses``), both labelled with the robot and the policy version."""

    def __init__(self, inner: ChunkPolicy, samples: Samples, robot_id: str) -> None:
        self.inner = inner
        self.version = inner.version
        self.samples = samples
        self.labels = (robot_id, inner.version)
        self._misses = 0

    def infer(self, obs: Observation, prefix: np.ndarray | None = None) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return self.inner.infer(obs, prefix)
        finally:
            self.samples.observe("policy_inference_seconds", self.labels, time.perf_counter() - t0)
            self._count_misses()

    def reset(self) -> None:
        self.inner.reset()
        self._misses = self._seen_misses()

    def _seen_misses(self) -> int:
        return int(getattr(getattr(self.inner, "stats", None), "deadline_misses", 0) or 0)

    def _count_misses(self) -> None:
        seen = self._seen_misses()
        if seen > self._misses:
            self.samples.inc("policy_deadline_misses", self.labels, seen - self._misses)
        self._misses = seen


def measured(policies: PolicyForJob, samples: Samples, robot_id: str) -> PolicyForJob:
    """``policies`` with each job's policy wrapped in ``MeasuredPolicy``."""

    def policy_for(spec: JobSpec) -> ChunkPolicy | None:
        policy = policies(spec)
        return None if policy is None else MeasuredPolicy(policy, samples, robot_id)

    return policy_for


def build_worker_app(
    redis_url: str,
    robot_id: str,
    runner: Callable[[JobSpec], JobOutcome] | None = None,
    *,
    worker_id: str | None = None,
    time_scale: float | None = None,
    samples: Samples | None = None,
) -> Celery:
    """The Celery app of one robot's worker, with the run-job task registered.

    ``runner`` runs each job (default: the robot's own scripted program,
    ``robot.skills.run_job``). ``time_scale`` paces simulated jobs (``Paced``): a walk
    to a new station, then each job's cycle time, divided by the scale in wall time.
    ``samples`` (the policy's figures) are sent to Redis after each job, best effort.
    """
    if runner is None:
        runner = run_job
    if time_scale is not None:
        runner = Paced(runner, time_scale)
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
        if samples is not None:
            samples.send(client)  # kept for the next job if Redis does not take them
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
    policies: PolicyForJob | None = None,
    log_setup: Callable[[], None] | None = None,
    quiet: bool = False,
) -> None:
    """Run the worker in this process until it is stopped (concurrency 1, solo pool).

    ``policies`` chooses what drives the robot for each job (``policy.sources`` builds
    one from ``expert``, ``auto`` or a server's address); without it, or where it gives
    None, the robot's own scripted program runs the job. ``log_setup``, if given,
    configures logging instead of Celery; ``quiet`` leaves out Celery's start-up banner
    (text on stdout that a log collector reading JSON lines cannot parse).
    """
    samples = Samples()
    runner = make_runner(None if policies is None else measured(policies, samples, robot_id))
    app = build_worker_app(redis_url, robot_id, runner, time_scale=time_scale, samples=samples)
    if log_setup is not None:
        log_setup()  # before Celery's first words
        # With a receiver of this signal connected, Celery leaves the logging to it.
        setup_logging.connect(lambda **_: log_setup(), weak=False)
    beat = Heartbeat(redis_url, robot_id)
    beat.start()
    app.worker_main(
        [
            *(["--quiet"] if quiet else []),
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
