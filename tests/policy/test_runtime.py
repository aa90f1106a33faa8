"""The shipped checkpoints driving the real simulator."""

import numpy as np
import pytest

from policy.evaluate import EVAL_SEED0, evaluate, format_report, wilson
from policy.exec_config import ExecConfig, ExecMode
from policy.latency import LatencyInjector
from policy.local import LocalPolicy
from policy.runtime import checkpoint_dir, has_policy, load_policy, policy_version, simulated_async
from policy.simtime import SimTimeRunner
from robot.env import CellEnv, rollout
from robot.jobs import Task

SHIPPED = [t for t in Task if has_policy(t)]


def test_every_task_has_a_shipped_policy():
    assert set(SHIPPED) == set(Task)


@pytest.mark.parametrize("task", SHIPPED)
def test_shipped_checkpoint_is_small_and_loads_with_its_version(task):
    folder = checkpoint_dir(task)
    assert (folder / "model.safetensors").stat().st_size <= 20 * 1024 * 1024
    policy = load_policy(task)
    assert isinstance(policy, LocalPolicy)
    assert policy.version == policy_version(task)


def test_policy_runs_the_simulator_asynchronously_without_running_dry():
    policy = load_policy(Task.NUT_INSTALL)
    for i in range(2):
        env = CellEnv(Task.NUT_INSTALL, seed=EVAL_SEED0 + 900 + i, render=True)
        stats, done = SimTimeRunner(
            policy, ExecConfig(), latency=LatencyInjector("fixed:200", seed=i)
        ).run(env, env.max_steps + 1)
        assert done
        assert stats.empty_queue_ticks == 0
        assert max(stats.action_ages) <= ExecConfig().staleness_ticks
        assert stats.chunks_used >= 3 and stats.startup_ticks >= 6 * 3  # 3 rounds, 200 ms
        out = env.outcome()
        assert out.done and len(out.fasteners) == 6


def test_simulated_async_wrapper_plugs_into_the_simulator_rollout():
    wrapped = simulated_async(load_policy(Task.NUT_INSTALL), latency="fixed:80")
    out = rollout(CellEnv(Task.NUT_INSTALL, seed=EVAL_SEED0 + 950, render=True), wrapped)
    assert out.done and out.steps > 0
    assert wrapped.version == policy_version(Task.NUT_INSTALL)
    assert wrapped.stats.chunks_used >= 3


def test_evaluation_reports_policy_beside_expert():
    r = evaluate(load_policy(Task.NUT_INSTALL), Task.NUT_INSTALL, 2, seed0=EVAL_SEED0 + 970)
    assert r["policy"]["episodes"] == r["expert"]["episodes"] == 2
    assert 0.0 <= r["policy"]["ci95"][0] <= r["policy"]["success_rate"] <= r["policy"]["ci95"][1]
    assert r["expert"]["cycle_time_s_mean"] > 0
    # The shipped nut checkpoint says how long its chunks run, and the report says so.
    assert r["replan_age"] == load_policy(Task.NUT_INSTALL).replan_age == 11
    assert "execution prefix with latency fixed:80, replan age 11 ticks" in format_report(r)
    # It also says how its boundaries are joined; a config may switch outright instead.
    assert r["join_ticks"] == load_policy(Task.NUT_INSTALL).join_ticks == 6
    assert "replan age 11 ticks, chunks joined over 6 ticks" in format_report(r)
    outright = evaluate(
        load_policy(Task.NUT_INSTALL),
        Task.NUT_INSTALL,
        1,
        seed0=EVAL_SEED0 + 970,
        config=ExecConfig(join_ticks=0),
        with_expert=False,
    )
    assert outright["join_ticks"] == 0 and "joined" not in format_report(outright)
    # From 5 ticks of delay on, chunks are requested as they arrive; the report says so.
    assert r["continuous_from_ticks"] == 5
    assert "joined over 6 ticks, continuous from a delay of 5 ticks" in format_report(r)
    assert "continuous" not in format_report(
        evaluate(
            load_policy(Task.NUT_INSTALL),
            Task.NUT_INSTALL,
            1,
            seed0=EVAL_SEED0 + 970,
            config=ExecConfig(mode=ExecMode.SYNC),
            with_expert=False,
        )
    )
    lo, hi = wilson(190, 200)
    assert 0.90 < lo < 0.95 < hi < 0.98
    assert np.isclose(sum(wilson(0, 0)), 1.0)
