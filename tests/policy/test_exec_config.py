"""The execution settings: which replan age and join a run uses."""

from policy.exec_config import DEFAULT_REPLAN_AGE, ExecConfig
from policy.latency import LatencyInjector
from policy.simtime import SimTimeRunner
from tests.policy.helpers import CountingEnv, WavePolicy


def test_the_replan_age_is_the_configs_else_the_policys_else_the_default():
    own = WavePolicy(replan_age=11)
    assert ExecConfig().for_policy(WavePolicy()).replan_age == DEFAULT_REPLAN_AGE
    assert ExecConfig().for_policy(own).replan_age == 11
    assert ExecConfig(replan_age=6).for_policy(own).replan_age == 6
    env = CountingEnv(200)
    runner = SimTimeRunner(own, ExecConfig(), latency=LatencyInjector("fixed:80", seed=3))
    stats, _ = runner.run(env, 205)
    assert max(stats.action_ages) == 11 + 3 - 1


def test_the_join_is_the_configs_else_the_policys_else_none():
    own = WavePolicy(join_ticks=6)
    assert ExecConfig().for_policy(WavePolicy()).join_ticks == 0
    assert ExecConfig().for_policy(own).join_ticks == 6
    assert ExecConfig(join_ticks=0).for_policy(own).join_ticks == 0
    assert ExecConfig(join_ticks=3).settled_join_ticks(own) == 3
