"""Asynchronous chunk execution in simulated time, with latency counted in ticks.

The simulator pauses while the model computes, so a chunk requested at tick ``k`` can be
computed at once and simply held back until tick ``k + d`` (``d`` drawn from the latency
injector, in ticks): the robot executes exactly what it would with a real asynchronous
worker. ``SimTimeRunner`` drives a whole episode; ``SimulatedAsyncPolicy`` is the same
thing as a ``ChunkPolicy`` wrapper for callers that own the episode loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from typing import Protocol

import numpy as np

from policy.chunking import ChunkScheduler, policy_chunk
from policy.exec_config import ExecConfig, ExecMode, ExecStats
from policy.latency import LatencyInjector
from robot.chunk_policy import ChunkPolicy
from robot.schema import Observation

Segment = Callable[[Observation], Hashable]


def round_segment(obs: Observation) -> Hashable:
    """The simulator's round: a scripted phase between rounds moves the arms."""
    return obs.extras.get("round")


class Env(Protocol):
    def reset(self) -> Observation: ...

    def step(self, action: np.ndarray) -> tuple[Observation, bool]: ...


class SimPipeline:
    """The scheduler plus at most one pending chunk, advanced one tick at a time."""

    def __init__(
        self,
        policy: ChunkPolicy,
        config: ExecConfig,
        latency: LatencyInjector | None,
        horizon: int,
    ) -> None:
        self.policy = policy
        self.config = config.for_policy(policy)
        self.latency = latency
        self.sched = ChunkScheduler(self.config, horizon)
        self.pending: tuple[int, np.ndarray, float] | None = None
        self.segment: Hashable = None

    def new_segment(self, obs: Observation, segment: Segment) -> None:
        """Restart the schedule when ``obs`` begins a new segment (see ``restart``)."""
        key = segment(obs)
        if key != self.segment:
            if self.segment is not None:
                self.sched.restart()
                self.pending = None
            self.segment = key

    def deliver_due(self, tick: int) -> None:
        if self.pending is not None and self.pending[0] <= tick:
            _, chunk, lat = self.pending
            self.pending = None
            self.sched.deliver(chunk, tick, lat)

    def request(self, tick: int, obs: Observation) -> None:
        prefix = self.sched.begin_request(tick)
        chunk = policy_chunk(self.policy, obs, prefix, self.sched.guidance)
        lat = self.latency.sample_s() if self.latency is not None else 0.0
        d = math.ceil(lat / self.config.dt - 1e-9)
        if self.config.mode is not ExecMode.SYNC:
            d = max(d, 1)  # an asynchronous worker answers at the earliest on the next tick
        self.pending = (tick + d, chunk, lat)
        self.deliver_due(tick)


class SimTimeRunner:
    """Run one episode of ``env`` under ``policy`` in simulated time."""

    def __init__(
        self,
        policy: ChunkPolicy,
        config: ExecConfig,
        *,
        latency: LatencyInjector | None = None,
        horizon: int = 30,
        segment: Segment = round_segment,
    ) -> None:
        self._policy = policy
        self._config = config
        self._latency = latency
        self._horizon = horizon
        self._segment = segment

    def run(
        self, env: Env, max_steps: int, on_tick: Callable[[np.ndarray], None] | None = None
    ) -> tuple[ExecStats, bool]:
        """Returns the execution counters and whether the episode ended by itself.
        ``on_tick(action)`` sees every action just before ``env`` applies it."""
        self._policy.reset()
        pipe = SimPipeline(self._policy, self._config, self._latency, self._horizon)
        obs = env.reset()
        for tick in range(max_steps):
            pipe.new_segment(obs, self._segment)
            pipe.deliver_due(tick)
            if pipe.sched.want_request(tick):
                pipe.request(tick, obs)
            action = pipe.sched.next_action(tick)
            if on_tick is not None:
                on_tick(action)
            obs, done = env.step(action)
            if done:
                return pipe.sched.stats, True
        return pipe.sched.stats, False


class SimulatedAsyncPolicy:
    """A ``ChunkPolicy`` that returns what asynchronous execution would run.

    Contract: ``infer(obs)`` returns the actions for ticks ``t .. t+n-1`` where ``t`` is the
    number of actions returned since ``reset()``; the caller executes all of them and
    calls again with the observation that follows (``n`` ends where the next chunk is
    requested, so every request sees a fresh observation).
    """

    def __init__(
        self,
        policy: ChunkPolicy,
        config: ExecConfig | None = None,
        *,
        latency: LatencyInjector | None = None,
        horizon: int = 30,
        segment: Segment = round_segment,
    ) -> None:
        self._inner = policy
        self._segment = segment
        self._config = config or ExecConfig()
        self._latency = latency
        self._horizon = horizon
        self.version = policy.version
        self.reset()

    @property
    def stats(self) -> ExecStats:
        return self._pipe.sched.stats

    def reset(self) -> None:
        self._inner.reset()
        self._pipe = SimPipeline(self._inner, self._config, self._latency, self._horizon)
        self._tick = 0

    def infer(self, obs: Observation, prefix: np.ndarray | None = None) -> np.ndarray:
        # ``prefix`` is owned by this wrapper's scheduler; a caller's prefix is not used.
        pipe = self._pipe
        # Chunks are indexed by the observation's step; a caller that stopped executing
        # early (e.g. at the end of a segment) resumes from where it really is.
        tick = obs.step if obs.step <= self._tick else self._tick
        pipe.new_segment(obs, self._segment)
        out: list[np.ndarray] = []
        while len(out) < self._horizon:
            pipe.deliver_due(tick)
            if pipe.sched.want_request(tick):
                if out:
                    break
                pipe.request(tick, obs)
            out.append(pipe.sched.next_action(tick))
            tick += 1
        self._tick = tick
        return np.stack(out)
