import numpy as np
import pytest

from policy.chunking import (
    ACTION_SCALE,
    MOTION_DIMS,
    TOOL_DIMS,
    ChunkScheduler,
    join_correction,
    join_shape,
)
from policy.exec_config import DEFAULT_REPLAN_AGE, ExecConfig, ExecMode
from policy.latency import LatencyInjector
from policy.simtime import SimTimeRunner, SimulatedAsyncPolicy
from robot.schema import ACTION_DIM, MAX_STEP_M
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
    stats, _, _cfg = run(ExecMode.PREFIX, latency, replan_age=age, continuous_from_ticks=0)
    d = {"fixed:80": 3, "fixed:200": 6}[latency]
    ages = np.asarray(stats.action_ages)
    switches = np.flatnonzero(np.diff(ages) < 0) + 1
    # Whatever the delay, every chunk runs `age` ticks: its actions are d to age + d - 1
    # ticks old when they run.
    assert set(np.diff(switches).tolist()) == {age}
    assert set(ages[switches - 1].tolist()) == {age + d - 1}


@pytest.mark.parametrize("mode", [ExecMode.PREFIX, ExecMode.BLEND, ExecMode.RTC])
@pytest.mark.parametrize(("latency", "d"), [("fixed:160", 5), ("fixed:200", 6), ("fixed:250", 8)])
def test_from_a_long_delay_on_each_chunk_is_requested_as_the_last_arrives(mode, latency, d):
    stats, _, cfg = run(mode, latency, replan_age=11)
    assert cfg.continuous_from_ticks == 5
    ages = np.asarray(stats.action_ages)
    switches = np.flatnonzero(np.diff(ages) < 0) + 1
    # Each chunk runs only while the next is computed: no action is older than 2d - 1
    # ticks, where the replan age would have run them to 11 + d - 1.
    assert len(switches) > 50
    assert set(np.diff(switches).tolist()) == {d}
    assert set(ages[switches - 1].tolist()) == {2 * d - 1}
    assert stats.dropped_observations == 0 and stats.empty_queue_ticks == 0


def test_below_the_continuous_delay_and_when_turned_off_chunks_run_the_replan_age():
    for latency, cont in [("fixed:120", 5), ("fixed:200", 7), ("fixed:200", 0)]:
        stats, _, _ = run(ExecMode.PREFIX, latency, replan_age=11, continuous_from_ticks=cont)
        switches = np.flatnonzero(np.diff(np.asarray(stats.action_ages)) < 0) + 1
        assert set(np.diff(switches).tolist()) == {11}, (latency, cont)


def test_one_slow_answer_does_not_make_inference_continuous():
    # 80 ms with a rare 600 ms stall: the delay estimate (a quantile) stays at 3 ticks,
    # so chunks keep running the replan age between the stalls.
    stats, _, _ = run(ExecMode.PREFIX, "spike:80,0.02,600", replan_age=11)
    runs = np.diff(np.flatnonzero(np.diff(np.asarray(stats.action_ages)) < 0) + 1)
    assert np.median(runs) == 11 and np.mean(runs == 11) > 0.8


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


@pytest.mark.parametrize("ticks", [3, 6, 12])
def test_a_join_correction_eases_the_jump_and_gives_the_motion_back(ticks):
    jump = np.linspace(-1.0, 1.0, ACTION_DIM).astype(np.float32) * MAX_STEP_M
    rows = join_correction(jump, ticks)
    assert rows.shape == (ticks, ACTION_DIM)
    np.testing.assert_allclose(rows.sum(axis=0), 0.0, atol=1e-6 * MAX_STEP_M)
    assert not rows[:, TOOL_DIMS].any()
    # From the jump (the action just executed) to no correction at all, in small steps.
    path = np.vstack([jump, rows, np.zeros(ACTION_DIM)])[:, MOTION_DIMS]
    steps = np.abs(np.diff(path, axis=0)) / np.abs(jump[MOTION_DIMS]).clip(1e-12)
    assert steps.max() <= 2.5 / (ticks + 1)
    assert not join_correction(jump, 0).size


def _switch_slow_to_fast(join_ticks: int, arrive: int = 11, ticks: int = 26) -> np.ndarray:
    """Executed actions: a slow chunk, then at tick 8 a request for a faster one (slow
    enough that the correction stays within the speed limit) with a 3-row prefix (the
    delay estimate is 0.1 s at 30 Hz); it arrives at tick ``arrive``."""
    s = ChunkScheduler(ExecConfig(join_ticks=join_ticks, accel_limit=10.0, replan_age=8))
    slow = np.zeros((30, ACTION_DIM), dtype=np.float32)
    slow[:, 0] = 0.1 * MAX_STEP_M
    fast = slow.copy()
    fast[:, 0] = 0.5 * MAX_STEP_M
    out = []
    for tick in range(ticks):
        if tick == arrive:
            assert s.deliver(fast, tick, 0.1)
        if s.want_request(tick) and tick < 20:
            assert len(s.begin_request(tick)) == (0 if tick == 0 else 3)
            if tick == 0:
                assert s.deliver(slow, tick, 0.1)
        out.append(s.next_action(tick))
    return np.stack(out)


# Arriving early, the new chunk first runs the rest of its prefix (the old plan): the join
# falls where its own rows begin, tick 11, either way.
@pytest.mark.parametrize("arrive", [10, 11])
def test_the_step_into_a_new_chunk_is_eased_and_the_arm_ends_where_it_puts_it(arrive):
    plain, joined = _switch_slow_to_fast(0, arrive), _switch_slow_to_fast(6, arrive)
    step = 0.4 * MAX_STEP_M
    np.testing.assert_allclose(np.diff(plain[:, 0])[10], step)  # tick 10 -> 11: outright
    first = step * (1 - join_shape(6)[0])
    np.testing.assert_allclose(np.diff(joined[:, 0])[10], first, rtol=1e-5)
    assert np.abs(np.diff(joined[:, 0])).max() <= first + 1e-7
    # Six ticks after the switch the correction is over and the arm has moved the same.
    np.testing.assert_allclose(joined[:17, 0].sum(), plain[:17, 0].sum(), rtol=1e-5)
    np.testing.assert_array_equal(joined[17:], plain[17:])


def test_prefix_boundaries_are_smoother_with_the_join_than_without():
    jumps = {}
    for join in (0, 6):
        stats, _, _ = run(ExecMode.PREFIX, "fixed:200", accel_limit=10.0, join_ticks=join)
        jumps[join] = float(np.mean(stats.boundary_jumps))
    assert jumps[6] < 0.5 * jumps[0]


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
