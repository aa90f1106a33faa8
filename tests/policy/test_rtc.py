"""Real-time chunking (mode ``rtc``) and the delay estimate."""

from dataclasses import replace

import numpy as np
import torch

from policy.chunking import ChunkScheduler, delay_estimate
from policy.exec_config import ExecConfig, ExecMode
from policy.executor import RealTimeExecutor, VirtualClock
from policy.flow import FlowPolicyModel, soft_mask
from policy.latency import LatencyInjector
from policy.local import LocalPolicy
from policy.model import ModelConfig
from policy.simtime import SimTimeRunner
from robot.schema import ACTION_DIM, Observation
from tests.policy.helpers import CountingEnv, WavePolicy, make_obs

TINY = replace(ModelConfig(), d_model=32, n_heads=2, vision_channels=(8, 8), keypoints=4)


class GuidedWave(WavePolicy):
    """The wave policy that also inpaints: returns ``target`` where it has rows."""

    def __init__(self) -> None:
        super().__init__()
        self.guided: list[tuple[int, np.ndarray, int, float]] = []

    def infer_guided(
        self, obs: Observation, target: np.ndarray, frozen: int, *, max_guidance: float
    ) -> np.ndarray:
        self.guided.append((obs.step, target.copy(), frozen, max_guidance))
        chunk = self.infer(obs)
        chunk[: len(target)] = target
        return chunk


def test_delay_estimate_ignores_a_single_spike_and_a_slow_first_call():
    assert delay_estimate([], 0.75, 0.1) == 0.1
    window = [0.08] * 7 + [0.9]
    assert delay_estimate(window, 0.75, 0.1) == 0.08
    warm_up = [2.5] + [0.2] * 4
    assert delay_estimate(warm_up, 0.75, 0.1) == 0.2
    # A sustained rise is not a spike: it is planned for.
    assert delay_estimate([0.08] * 4 + [0.2] * 4, 0.75, 0.1) == 0.2


def test_scheduler_delay_in_ticks_is_not_poisoned_by_a_spike():
    sched = ChunkScheduler(ExecConfig(mode=ExecMode.PREFIX, latency_window=8))
    for lat in [1.0] + [0.08] * 7:  # warm-up stall, then steady 80 ms
        sched.begin_request(0)
        sched.deliver(np.zeros((30, ACTION_DIM)), 0, lat)
    assert sched.delay_ticks() == 3
    sched.begin_request(0)
    sched.deliver(np.zeros((30, ACTION_DIM)), 0, 0.6)  # one spike
    assert sched.delay_ticks() == 3


def test_soft_mask_freezes_then_decays_to_zero_where_the_target_ends():
    w = soft_mask(30, frozen=3, overlap=20).numpy()
    assert (w[:3] == 1).all()
    assert (np.diff(w[3:20]) < 0).all() and 0 < w[19] < w[3] < 1
    assert (w[20:] == 0).all()
    assert (soft_mask(10, frozen=12, overlap=40).numpy() == 1).all()


def test_rtc_freezes_the_actions_that_run_while_inferring_and_guides_with_the_plan():
    policy = GuidedWave()
    # Each chunk runs 5 ticks past its takeover at 200 ms (a replan age of 6 + 5, kept at
    # this delay).
    config = ExecConfig(
        mode=ExecMode.RTC, guidance_scale=2.0, replan_age=11, continuous_from_ticks=0
    )
    env = CountingEnv(300)
    stats, done = SimTimeRunner(policy, config, latency=LatencyInjector("fixed:200")).run(env, 305)
    assert done and stats.empty_queue_ticks == 0 and stats.dropped_chunks == 0
    assert max(stats.action_ages) <= config.staleness_ticks
    assert len(policy.guided) > 10
    for _, target, frozen, scale in policy.guided:
        assert frozen == 6 and len(target) > frozen and scale == 2.0
    # The guided policy returns the plan where it has one, so a join is an ordinary step
    # of the wave, not the jump between two chunks' offsets.
    assert max(stats.boundary_jumps) <= max(stats.within_steps) + 1e-6


def test_rtc_without_an_inpainting_policy_falls_back_to_plain_chunks():
    policy = WavePolicy()
    stats, done = SimTimeRunner(
        policy, ExecConfig(mode=ExecMode.RTC), latency=LatencyInjector("fixed:80")
    ).run(CountingEnv(200), 205)
    assert done and stats.chunks_used > 10
    assert all(k == 0 for _, k in policy.calls)  # no prefix tokens in this mode


def test_guided_sampling_pulls_the_chunk_towards_the_target():
    torch.manual_seed(0)
    policy = LocalPolicy(FlowPolicyModel(TINY), "tiny", noise_scale=0.0)
    obs = make_obs(5)
    plain = policy.infer(obs)
    target = plain[:20] + 0.05
    free = policy.infer_guided(obs, target, 4, max_guidance=0.0)
    guided = policy.infer_guided(obs, target, 4, max_guidance=5.0)
    assert np.array_equal(guided[:4], target[:4]) and np.array_equal(free[:4], target[:4])
    np.testing.assert_allclose(free[4:], plain[4:], atol=1e-5)  # scale 0: plain sampling
    err = np.abs(guided[4:12] - target[4:12]).mean()
    assert err < 0.5 * np.abs(free[4:12] - target[4:12]).mean()


def test_threaded_executor_sends_the_same_guidance_as_simulated_time():
    cfg = ExecConfig(mode=ExecMode.RTC)
    env, ref_env = CountingEnv(300), CountingEnv(300)
    env.reset()
    threaded, simulated = GuidedWave(), GuidedWave()
    ex = RealTimeExecutor(
        threaded, env, cfg, clock=VirtualClock(), latency=LatencyInjector("fixed:80", seed=5)
    )
    assert ex.run(max_ticks=400).done
    SimTimeRunner(simulated, cfg, latency=LatencyInjector("fixed:80", seed=5)).run(ref_env, 400)
    assert len(threaded.guided) > 10
    assert [(s, f) for s, _, f, _ in threaded.guided] == [(s, f) for s, _, f, _ in simulated.guided]
    np.testing.assert_array_equal(np.stack(env.actions), np.stack(ref_env.actions))
