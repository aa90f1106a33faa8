"""The real-time chunk executor: a fixed-rate control thread and an inference worker.

The control thread runs on absolute deadlines ``t0 + k * dt`` (no drift: a late tick does
not push the later ones; a tick that overruns a whole period is counted as a deadline
miss and the schedule skips ahead to the next grid point instead of bursting). Each tick
it reads the observation, hands finished chunks to the ``ChunkScheduler``, starts a new
inference when one is due, and sends the scheduler's action. Inference runs in one
worker thread so a slow model never blocks the control thread; with an injected latency
the worker also waits that long before handing its chunk over.

The clock is a parameter. ``MonotonicClock`` is real time; ``VirtualClock`` makes time
advance only when the control thread sleeps and counts compute as instantaneous (the
control thread then waits for a result exactly when its injected latency has elapsed),
which makes runs deterministic for tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from policy.base import PolicyError
from policy.chunking import ChunkScheduler, Guidance, policy_chunk
from policy.exec_config import ExecConfig, ExecStats
from policy.latency import LatencyInjector
from policy.simtime import Segment, round_segment
from robot.chunk_policy import ChunkPolicy
from robot.schema import Observation

_EPS = 1e-9  # virtual instants computed two ways must compare equal


class Clock(Protocol):
    virtual: bool

    def now(self) -> float: ...

    def sleep_until(self, t: float) -> None: ...


class MonotonicClock:
    """Real time from ``time.perf_counter``; sleeps coarse, then spins the last 0.5 ms."""

    virtual = False

    def now(self) -> float:
        return time.perf_counter()

    def sleep_until(self, t: float) -> None:
        while True:
            left = t - time.perf_counter()
            if left <= 0:
                return
            time.sleep(left - 5e-4 if left > 1e-3 else 0)


class VirtualClock:
    """Time that moves only when someone sleeps until a later instant (tests, replays)."""

    virtual = True

    def __init__(self, start: float = 0.0) -> None:
        self._t = start

    def now(self) -> float:
        return self._t

    def sleep_until(self, t: float) -> None:
        self._t = max(self._t, t)


class RobotIO(Protocol):
    """What the executor drives: read the observation, send one action (True when done)."""

    def observe(self) -> Observation: ...

    def act(self, action: np.ndarray) -> bool: ...


@dataclass
class _Job:
    obs: Observation
    prefix: np.ndarray | None
    guidance: Guidance | None
    t_request: float
    inject_s: float
    done: threading.Event = field(default_factory=threading.Event)
    chunk: np.ndarray | None = None
    error: BaseException | None = None
    t_ready: float = 0.0


class _Worker:
    """One inference thread with a single job slot."""

    def __init__(self, policy: ChunkPolicy, clock: Clock) -> None:
        self._policy = policy
        self._clock = clock
        self._cv = threading.Condition()
        self._job: _Job | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="policy-inference", daemon=True)
        self._thread.start()

    def submit(self, job: _Job) -> None:
        with self._cv:
            self._job = job
            self._cv.notify()

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._job is None and not self._stop:
                    self._cv.wait(timeout=1.0)
                if self._stop:
                    return
                job, self._job = self._job, None
            assert job is not None
            try:
                job.chunk = policy_chunk(self._policy, job.obs, job.prefix, job.guidance)
            except BaseException as exc:  # reported to the control thread, never swallowed
                job.error = exc
            if not self._clock.virtual and job.inject_s > 0:
                time.sleep(job.inject_s)
            job.t_ready = job.t_request + job.inject_s if self._clock.virtual else self._clock.now()
            job.done.set()


@dataclass
class RunReport:
    """Counters and timing of one executor run (seconds)."""

    stats: ExecStats
    periods_s: list[float]
    lateness_s: list[float]
    done: bool

    def jitter_p99_s(self, dt: float) -> float:
        if not self.periods_s:
            return 0.0
        return float(np.percentile(np.abs(np.asarray(self.periods_s) - dt), 99))


class RealTimeExecutor:
    """Run ``policy`` against ``io`` at ``config.hz`` (see module doc).

    ``latency`` injects extra inference delay; ``stall_timeout_s`` abandons a request whose
    answer has not come back in time (the watchdog then holds the pose until a fresh chunk
    arrives). ``on_tick`` (optional) sees every tick's index, observation and action.
    When ``segment(obs)`` changes (the simulator's round), the schedule restarts.
    """

    def __init__(
        self,
        policy: ChunkPolicy,
        io: RobotIO,
        config: ExecConfig,
        *,
        horizon: int = 30,
        clock: Clock | None = None,
        latency: LatencyInjector | None = None,
        stall_timeout_s: float = 5.0,
        on_tick: Callable[[int, Observation, np.ndarray], None] | None = None,
        segment: Segment = round_segment,
    ) -> None:
        self.config = config.for_policy(policy)
        self.scheduler = ChunkScheduler(self.config, horizon)
        self._policy = policy
        self._io = io
        self._clock: Clock = clock or MonotonicClock()
        self._latency = latency
        self._stall_timeout_s = stall_timeout_s
        self._on_tick = on_tick
        self._segment = segment

    def run(self, max_ticks: int) -> RunReport:
        """Run until the episode is done or ``max_ticks`` ticks; returns the report."""
        clock, sched, dt = self._clock, self.scheduler, self.config.dt
        worker = _Worker(self._policy, clock)
        job: _Job | None = None
        periods: list[float] = []
        lateness: list[float] = []
        done = False
        seg: object = None
        try:
            t0 = clock.now()
            grid = 0
            last_start: float | None = None
            for tick in range(max_ticks):
                clock.sleep_until(t0 + grid * dt)
                start = clock.now()
                lateness.append(start - (t0 + grid * dt))
                if last_start is not None:
                    periods.append(start - last_start)
                last_start = start
                obs = self._io.observe()
                key = self._segment(obs)
                if key != seg:
                    if seg is not None:
                        # A scripted phase moved the arms: nothing planned before applies.
                        sched.restart()
                        job = None
                    seg = key
                job = self._collect(job, tick, start)
                if sched.want_request(tick):
                    prefix = sched.begin_request(tick)
                    inject = self._latency.sample_s() if self._latency else 0.0
                    job = _Job(obs, prefix, sched.guidance, start, inject)
                    worker.submit(job)
                    if self.config.mode == "sync":
                        job = self._await_sync(job, tick)
                action = sched.next_action(tick)
                done = self._io.act(action)
                if self._on_tick is not None:
                    self._on_tick(tick, obs, action)
                if done:
                    break
                grid += 1
                if not clock.virtual and clock.now() > t0 + grid * dt:
                    # Overran the period: count it and realign to the next grid point.
                    sched.stats.deadline_misses += 1
                    grid = int((clock.now() - t0) / dt) + 1
        finally:
            worker.stop()
        return RunReport(sched.stats, periods, lateness, done)

    def _collect(self, job: _Job | None, tick: int, now: float) -> _Job | None:
        """Deliver a finished job's chunk; abandon one that stalled past its timeout."""
        if job is None:
            return None
        # Compute is instantaneous in virtual time: once its latency has elapsed, wait for
        # the worker (with a deadline) so the run does not depend on the machine's speed.
        due = self._clock.virtual and now >= job.t_request + job.inject_s - _EPS
        if due and not job.done.wait(self._stall_timeout_s):
            raise PolicyError(f"policy gave no chunk within {self._stall_timeout_s} s")
        if job.done.is_set() and (not self._clock.virtual or now >= job.t_ready - _EPS):
            if job.error is not None:
                raise PolicyError(f"policy inference failed: {job.error}") from job.error
            assert job.chunk is not None
            self.scheduler.deliver(job.chunk, tick, job.t_ready - job.t_request)
            return None
        if now - job.t_request > self._stall_timeout_s:
            self.scheduler.abandon_request()
            self.scheduler.stats.dropped_chunks += 1
            return None
        return job

    def _await_sync(self, job: _Job, tick: int) -> _Job | None:
        """Synchronous baseline: block this tick until the chunk is back (with a deadline).

        A chunk back within the period runs at once; a slower one blocks the control
        thread past its deadline (counted as misses), as a synchronous controller would.
        """
        if not job.done.wait(self._stall_timeout_s):
            self.scheduler.abandon_request()
            self.scheduler.stats.dropped_chunks += 1
            return None
        if job.t_ready - job.t_request < self.config.dt:
            return self._collect(job, tick, job.t_ready)
        return job
