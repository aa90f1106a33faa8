import threading

import numpy as np
import pytest

from policy.chunking import MOTION_DIMS
from policy.exec_config import ExecConfig, ExecMode
from policy.executor import RealTimeExecutor, VirtualClock
from policy.latency import LatencyInjector
from policy.simtime import SimTimeRunner
from robot.chunk_policy import ChunkPolicy
from robot.schema import Observation
from tests.policy.helpers import CountingEnv, WavePolicy


@pytest.mark.parametrize("latency", ["fixed:0", "fixed:80", "fixed:200", "jitter:200,60"])
def test_threaded_executor_on_virtual_clock_never_runs_dry(latency):
    env = CountingEnv(400)
    env.reset()
    cfg = ExecConfig(mode=ExecMode.PREFIX)
    ex = RealTimeExecutor(
        WavePolicy(), env, cfg, clock=VirtualClock(), latency=LatencyInjector(latency, seed=5)
    )
    report = ex.run(max_ticks=1000)
    assert report.done
    s = report.stats
    assert s.empty_queue_ticks == 0 and s.dropped_chunks == 0
    assert max(s.action_ages) <= cfg.staleness_ticks
    assert s.chunks_used >= 20
    assert s.deadline_misses == 0
    # Same latencies in simulated time give the very same actions: one scheduling logic.
    ref_env = CountingEnv(400)
    SimTimeRunner(WavePolicy(), cfg, latency=LatencyInjector(latency, seed=5)).run(ref_env, 1000)
    np.testing.assert_array_equal(np.stack(env.actions), np.stack(ref_env.actions))


class StallingPolicy:
    """Answers normally until ``stall_after`` calls, then blocks until released."""

    def __init__(self, stall_after: int) -> None:
        self._inner = WavePolicy()
        self.version = self._inner.version
        self.release = threading.Event()
        self._n = 0
        self._stall_after = stall_after

    def reset(self) -> None:
        self._inner.reset()

    def infer(self, obs: Observation, prefix: np.ndarray | None = None) -> np.ndarray:
        self._n += 1
        if self._n == self._stall_after and not self.release.wait(timeout=60):
            raise RuntimeError("never released")
        return self._inner.infer(obs, prefix)


def test_watchdog_holds_the_pose_on_a_stall_in_real_time():
    policy = StallingPolicy(stall_after=3)
    assert isinstance(policy, ChunkPolicy)
    env = CountingEnv(10_000)
    env.reset()
    cfg = ExecConfig(mode=ExecMode.PREFIX, hz=30.0, staleness_ticks=25)
    held_ticks: list[int] = []

    def on_tick(tick: int, obs: Observation, action: np.ndarray) -> None:
        if ex.scheduler.stats.empty_queue_ticks and not np.any(action[MOTION_DIMS]):
            held_ticks.append(tick)
        if len(held_ticks) >= 15:
            policy.release.set()

    ex = RealTimeExecutor(policy, env, cfg, on_tick=on_tick, stall_timeout_s=30.0)
    report = ex.run(max_ticks=150)
    s = report.stats
    assert s.empty_queue_ticks >= 15  # the stall was seen and held through
    assert len(held_ticks) >= 15
    assert max(s.action_ages) <= 25  # nothing older than the bound ever ran
    assert s.chunks_used >= 3  # and execution resumed after the release
    assert all(np.all(a[4] == 1.0) for a in np.stack(env.actions)[held_ticks])
