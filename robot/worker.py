"""A robot's Celery worker: consumes ``robot.<id>``, runs each job once on its robot.

Each job arrives with its fence (``robot.fence``). The worker claims the fence before
anything touches the part and refuses a fence that was revoked, superseded or claimed
before, so a job key is worked at most once whatever the broker delivers. While the job
runs the claim is renewed; a stop the cell asks for is honoured at the next safe point
(between fasteners, before the work starts) and the outcome says what was done. The
outcome is stored under the fence, where the cell reads it, also after its own restart.

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
from pathlib import Path
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
from robot.errors import PolicyUnavailable
from robot.fence import RENEW_EVERY_S, FenceState, WorkerFences
from robot.job_episodes import EpisodeKeeper, EpisodeStore
from robot.jobs import ErrorCode, JobOutcome, JobSpec, Outcome
from robot.schema import Observation
from robot.sim.config import STATION_WALK_S
from robot.skills import make_runner, run_job
from robot.telemetry import Samples

log = logging.getLogger(__name__)

StopCheck = Callable[[], bool]
JobRunner = Callable[[JobSpec, StopCheck], JobOutcome]


def _never() -> bool:
    return False


class ClaimRenewal(threading.Thread):
    """Renews a claimed job's claim every ``RENEW_EVERY_S`` while the robot works on it,
    and learns from each renewal whether the cell asked the job to stop. A claim that is
    no longer ours (the cell declared it lost after Redis lost it) stops the job too."""

    def __init__(self, fences: WorkerFences, job_key: str, fence: str) -> None:
        super().__init__(name=f"claim-{job_key}", daemon=True)
        self.fences, self.job_key, self.fence = fences, job_key, fence
        self.stop_requested = threading.Event()
        self.finished = threading.Event()

    def run(self) -> None:
        while not self.finished.wait(RENEW_EVERY_S):
            try:
                ours, stop = self.fences.renew(self.job_key, self.fence)
            except redis.RedisError as exc:  # Redis restarting: the cell waits for it too
                log.warning("claim of job %s not renewed: %s", self.job_key, exc)
                continue
            if stop or not ours:
                if not self.stop_requested.is_set():
                    log.info("job %s: %s", self.job_key, "stop requested" if ours else "claim lost")
                self.stop_requested.set()


def _job_fields(spec: JobSpec, fence: str) -> dict[str, Any]:
    return {
        "job_key": spec.job_key,
        "fence": fence,
        "station": spec.station_id,
        "robot": spec.robot_id,
        "at": time.time(),
    }


def execute_fenced(
    fences: WorkerFences,
    spec: JobSpec,
    fence: str,
    runner: JobRunner,
    episodes: EpisodeKeeper | None = None,
) -> JobOutcome | None:
    """Run ``spec`` under ``fence`` if this worker can claim it; None when refused.

    The claim comes first, before anything touches the part: a fence that was revoked,
    superseded or claimed before (a broker redelivery, a message left from before a
    restart) is refused, so a job key is worked at most once. While the runner works the
    claim is renewed; the runner is told through its stop check when the cell asked it
    to stop. A job whose policy cannot be had here (``PolicyUnavailable``, e.g. an
    unknown version) ends NOK with ``DISPATCH_FAILED``. "job started" and "job ended"
    are logged from the robot's side (with the job key, fence and time), the end before
    the outcome is made visible to the cell. ``episodes``, when given, keeps the job's
    episode (taped by the runner) with its final outcome and puts it on the outcome; a
    write that fails leaves the outcome as it was.
    """
    state = fences.claim(spec.job_key, fence)
    if state != FenceState.CLAIMED:
        log.info("job %s refused: its fence is %s", spec.job_key, state, extra={"fence": fence})
        return None
    log.info("job started %s", spec.job_key, extra=_job_fields(spec, fence))
    renewal = ClaimRenewal(fences, spec.job_key, fence)
    renewal.start()
    try:
        outcome = runner(spec, renewal.stop_requested.is_set)
    except PolicyUnavailable as exc:  # raised before the robot starts: the part is untouched
        log.warning("job %s: %s", spec.job_key, exc)
        outcome = JobOutcome.failed(spec, ErrorCode.DISPATCH_FAILED, str(exc))
    except Exception as exc:  # a crashed skill is a NOK job, recorded, not a lost one
        log.exception("job %s failed in the robot runtime", spec.job_key)
        detail = f"robot runtime error: {type(exc).__name__}: {exc}"
        outcome = JobOutcome.failed(spec, ErrorCode.INTERRUPTED, detail)
    finally:
        renewal.finished.set()
    if episodes is not None:
        outcome = episodes.keep(spec, outcome)
    fields = _job_fields(spec, fence) | {
        "outcome": outcome.outcome.value,
        "error_code": outcome.error_code,
    }
    log.info("job ended %s %s", spec.job_key, outcome.outcome.value, extra=fields)
    state = fences.finish(outcome, fence)
    if state != FenceState.DONE:
        log.warning(
            "job %s: outcome kept aside, the cell had given the job up (%s)", spec.job_key, state
        )
    return outcome


def stopped(outcome: JobOutcome, done: int, of: int) -> JobOutcome:
    """What a job stopped at a safe point did: its first ``done`` of ``of`` steps."""
    kept = outcome.fasteners[:done]
    return outcome.model_copy(
        update={
            "outcome": Outcome.NOK,
            "error_code": int(ErrorCode.STOPPED),
            "fasteners": kept,
            "cycle_time_ms": round(outcome.cycle_time_ms * done / of),
            "detail": f"stopped at a safe point at the cell's request after {done} of {of} "
            + ("fasteners" if outcome.fasteners else "steps"),
        }
    )


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

    def __call__(self, spec: JobSpec, stop: StopCheck = _never) -> JobOutcome:
        """Walk, then work ``spec``, checking ``stop`` at each safe point: before the
        work starts and between fasteners (a handling job has one step)."""
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
        steps = max(1, len(outcome.fasteners))
        wall_s = outcome.cycle_time_ms / 1000 / self.time_scale
        for done in range(steps):
            if stop():
                outcome = stopped(outcome, done, steps)
                break
            rest = t0 + wall_s * (done + 1) / steps - time.monotonic()
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
    episodes: EpisodeKeeper | None = None,
) -> Celery:
    """The Celery app of one robot's worker, with the run-job task registered.

    ``runner`` runs each job (default: the robot's own scripted program,
    ``robot.skills.run_job``). ``time_scale`` paces simulated jobs (``Paced``): a walk
    to a new station, then each job's cycle time, divided by the scale in wall time.
    ``samples`` (the policy's figures) are sent to Redis after each job, best effort.
    ``episodes`` keeps each job's episode (``execute_fenced``); the runner tapes it.
    """
    if runner is None:
        runner = run_job
    paced: JobRunner = Paced(runner, time_scale) if time_scale is not None else _unpaced(runner)
    app = make_celery(redis_url)
    app.conf.task_default_queue = robot_queue(robot_id)
    client = redis.Redis.from_url(redis_url)
    fences = WorkerFences(client, worker_id or f"{robot_id}-{os.getpid()}-{time.time_ns()}")

    @app.task(name=RUN_JOB, ignore_result=True)
    def run_job_task(spec_data: dict[str, Any], fence: str) -> None:
        spec = JobSpec.model_validate(spec_data)
        if spec.robot_id != robot_id:
            # Never claimed: the cell sees the fence unclaimed and revokes it.
            log.error(
                "job %s for robot %s reached the queue of robot %s; not run",
                spec.job_key,
                spec.robot_id,
                robot_id,
            )
            return
        execute_fenced(fences, spec, fence, paced, episodes)
        if samples is not None:
            samples.send(client)  # kept for the next job if Redis does not take them

    return app


def _unpaced(runner: Callable[[JobSpec], JobOutcome]) -> JobRunner:
    """A runner without pacing: its one safe point is before the job starts."""

    def run(spec: JobSpec, stop: StopCheck) -> JobOutcome:
        if stop():
            return JobOutcome.failed(spec, ErrorCode.STOPPED, "stopped before it started")
        return runner(spec)

    return run


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
    episode_dir: Path | None = None,
) -> None:
    """Run the worker in this process until it is stopped (concurrency 1, solo pool).

    ``policies`` chooses what drives the robot for each job (``policy.sources`` builds
    one from ``expert``, ``auto`` or a server's address); without it, or where it gives
    None, the robot's own scripted program runs the job. ``log_setup``, if given,
    configures logging instead of Celery; ``quiet`` leaves out Celery's start-up banner
    (text on stdout that a log collector reading JSON lines cannot parse).
    ``episode_dir``, when given, is the episode store each job's episode is kept in
    (``robot.job_episodes``).
    """
    samples = Samples()
    episodes = None if episode_dir is None else EpisodeKeeper(EpisodeStore(episode_dir))
    runner = make_runner(
        None if policies is None else measured(policies, samples, robot_id),
        None if episodes is None else episodes.tape,
    )
    app = build_worker_app(
        redis_url, robot_id, runner, time_scale=time_scale, samples=samples, episodes=episodes
    )
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
