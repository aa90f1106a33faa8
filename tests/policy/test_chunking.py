import numpy as np
import pytest

from policy.chunking import ACTION_SCALE, MOTION_DIMS
from policy.exec_config import DEFAULT_REPLAN_AGE, ExecConfig, ExecMode
from policy.latency import LatencyInjector
from policy.simtime import SimTimeRunner, SimulatedAsyncPolicy
from tests.policy.helpers import CountingEnv, WavePolicy, make_obs

LATENCIES = ["fixed:0", "fixed:80", "fixed:200", "jitter:200,60", "heavy:80,2.5"]


def run(mode: ExecMode, latency: str, *, ticks: int = 600, **cfg) -> tuple:
    env = CountingEnv(ticks)
    config = ExecConfig(mode=mode, **cfg)
    runner = SimTimeRunner(WavePolicy(), config, latency=LatencyInjector(latency, seed=3))
    stats, done = runner.run(env, ticks + 5)
    assert done
    return stats, np.stack(env.actions), config


@pytest.mark.parametrize("latency", LATENCIES)
def test_async_never_runs_dry_and_never_runs_stale_actions(latency):
    stats, _actions, cfg = run(ExecMode.PREFIX, latency)
    assert stats.chunks_used > 10
    assert stats.empty_queue_ticks == 0
    assert stats.startup_ticks <= 1 + int(np.ceil(0.2 * 20 / cfg.dt))
    assert max(stats.action_ages) <= cfg.staleness_ticks
    assert stats.dropped_chunks == 0
    assert len(stats.action_ages) == stats.ticks - stats.startup_ticks


@pytest.mark.parametrize("latency", ["fixed:80", "fixed:200"])
def test_new_chunk_takes_over_at_the_measured_delay(latency):
    stats, _, cfg = run(ExecMode.PREFIX, latency)
    d = int(np.ceil(float(latency.split(":")[1]) / 1e3 / cfg.dt - 1e-9))
    ages = np.asarray(stats.action_ages)
    # Right after a switch the executed row is the delay: the chunk's own index d.
    switches = np.flatnonzero(np.diff(ages) < 0) + 1
    assert len(switches) > 5
    assert set(ages[switches].tolist()) == {max(d, 1)}


@pytest.mark.parametrize("age", [DEFAULT_REPLAN_AGE, 11])
@pytest.mark.parametrize("latency", ["fixed:80", "fixed:200"])
def test_each_chunk_runs_until_its_actions_reach_the_replan_age(latency, age):
    stats, _, _cfg = run(ExecMode.PREFIX, latency, replan_age=age)
    d = {"fixed:80": 3, "fixed:200": 6}[latency]
    ages = np.asarray(stats.action_ages)
    switches = np.flatnonzero(np.diff(ages) < 0) + 1
    # Whatever the delay, every chunk runs `age` ticks: its actions are d to age + d - 1
    # ticks old when they run.
    assert set(np.diff(switches).tolist()) == {age}
    assert set(ages[switches - 1].tolist()) == {age + d - 1}


def test_sync_replans_by_rows_run_not_by_the_replan_age():
    a = run(ExecMode.SYNC, "fixed:80")[1]
    b = run(ExecMode.SYNC, "fixed:80", replan_age=20)[1]
    np.testing.assert_array_equal(a, b)


def test_prefix_conditioning_joins_chunks_more_smoothly_than_naive_switching():
    jumps = {}
    for mode in (ExecMode.PREFIX, ExecMode.NAIVE, ExecMode.BLEND):
        stats, _, _ = run(mode, "fixed:200", accel_limit=10.0)
        jumps[mode] = float(np.mean(stats.boundary_jumps))
    assert jumps[ExecMode.PREFIX] < 0.2 * jumps[ExecMode.NAIVE]
    assert jumps[ExecMode.BLEND] < jumps[ExecMode.NAIVE]


def test_velocity_and_acceleration_limits_hold_across_boundaries():
    stats, actions, _cfg = run(ExecMode.NAIVE, "fixed:120", accel_limit=0.25)
    assert np.all(np.abs(actions[:, MOTION_DIMS]) <= ACTION_SCALE[MOTION_DIMS] + 1e-7)
    steps = np.abs(np.diff(actions, axis=0))[:, MOTION_DIMS] / ACTION_SCALE[MOTION_DIMS]
    assert steps.max() <= 0.25 + 1e-5
    assert stats.boundary_jumps and max(stats.boundary_jumps) > 0.25  # raw jumps were larger


def test_watchdog_holds_the_pose_when_inference_stalls():
    # Every chunk takes 2 s: the 30-action chunk (1 s) runs out and nothing fresh exists.
    stats, actions, _cfg = run(ExecMode.PREFIX, "spike:80,0.3,2000", staleness_ticks=20)
    assert stats.empty_queue_ticks > 0
    assert max(stats.action_ages) <= 20
    after_start = actions[stats.startup_ticks :]
    held = np.linalg.norm(after_start[:, MOTION_DIMS], axis=1) == 0
    # The arm decelerates within the acceleration limit, then stands still: the zero-motion
    # ticks cover all stalled ticks but the few spent braking.
    assert held.sum() >= stats.empty_queue_ticks - 4 * stats.chunks_used
    # Holding keeps the tool command (a gripper must not open on a stall).
    assert np.all(after_start[held][:, 4] == 1.0)


def test_sync_baseline_waits_for_every_chunk():
    stats, _actions, _ = run(ExecMode.SYNC, "fixed:200", replan_every=20)
    assert stats.sync_wait_ticks >= 6 * (stats.chunks_used - 1)
    assert stats.empty_queue_ticks == 0


def test_runs_are_deterministic_for_a_seed():
    a = run(ExecMode.PREFIX, "heavy:80,1.5")[1]
    b = run(ExecMode.PREFIX, "heavy:80,1.5")[1]
    np.testing.assert_array_equal(a, b)


def test_simulated_async_wrapper_matches_the_runner():
    cfg = ExecConfig(mode=ExecMode.PREFIX)
    ref_stats, ref_actions, _ = run(ExecMode.PREFIX, "fixed:80", ticks=200)
    wrapped = SimulatedAsyncPolicy(WavePolicy(), cfg, latency=LatencyInjector("fixed:80", seed=3))
    env = CountingEnv(200)
    obs = env.reset()
    done = False
    lengths = []
    while not done:
        chunk = wrapped.infer(obs)
        lengths.append(len(chunk))
        for a in chunk:
            obs, done = env.step(a)
            if done:
                break
    np.testing.assert_array_equal(np.stack(env.actions), ref_actions)
    assert wrapped.stats.empty_queue_ticks == ref_stats.empty_queue_ticks == 0
    assert max(lengths) == DEFAULT_REPLAN_AGE and wrapped.version == "wave-1"
    assert make_obs(0).step == 0


def test_the_run_hook_sees_every_action_the_env_applies():
    env = CountingEnv(200)
    seen: list[np.ndarray] = []
    runner = SimTimeRunner(WavePolicy(), ExecConfig(), latency=LatencyInjector("fixed:80", seed=1))
    runner.run(env, 205, on_tick=lambda a: seen.append(a.copy()))
    assert len(seen) == len(env.actions) == 200
    np.testing.assert_array_equal(np.stack(seen), np.stack(env.actions))
