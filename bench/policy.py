"""Policy runtime figures, each printed as a ratio against a floor measured in the same run.

1. Inference latency p50/p99 of the shipped nut-installation checkpoint on this CPU
   (2 threads), against the control period and against a one-integration-step floor.
2. Control-loop period jitter p99 and deadline misses over 10,000 ticks with injected
   inference latencies 0, 80 and 200 ms, against a bare loop (same clock, no policy).
   To keep the run short the default is time-scaled: the loop runs at 300 Hz and the
   latencies are scaled by the same factor (0, 8, 20 ms), so each run covers 10,000
   ticks in ~33 s; ``--realtime`` runs the true 30 Hz loop (10,000 ticks = 5.6 min per
   latency, ~22 min in all). The policy in this loop replays chunks recorded from the
   model, so the figure is the executor's, not the model's compute.
3. Every execution method (sync, prefix, naive, blend, rtc) on N seeds of nut
   installation in simulated time at 80 and 200 ms injected latency, each as deployed
   (default ``ExecConfig`` but the mode): policy-driven ticks and cycle time against
   synchronous execution, success with its 95% Wilson interval, and the mean action
   jump at a chunk boundary over the median within-chunk step (the actions the executor
   commands, after blending or joining, before the acceleration limit), with the median
   jump beside it: the mean is what a
   rare hard jump costs, the median what a typical boundary looks like. The policy's own
   steps are mostly tiny with rare full-speed changes (as the expert's are), so under
   that ratio an ordinary step inside a chunk already scores its mean over its median
   (printed as the interior floor); the mean jump over the mean within-chunk step
   compares like with like (1: a boundary no rougher than a step inside a chunk).
   The nut checkpoint spreads the step into each new chunk's own rows over 6 ticks
   (``ExecConfig.join_ticks``); ``prefix/join0`` switches outright instead, to show what
   the join does for smoothness and costs in parts.
   From 5 ticks of delay on (``ExecConfig.continuous_from_ticks``) each chunk is requested
   as the last arrives, so at 200 ms chunks run 6 ticks rather than the checkpoint's
   replan age; ``prefix/at-age`` keeps the replan age at every delay, to show what
   that costs in parts and saves in ticks.
   ``sync/10`` is synchronous execution running 10 rows of each chunk instead of 5: it
   holds less often, so it is faster (on 50 seeds at 80 ms it kept about as many parts;
   15 and 20 rows lost 5 and 11 more). Late lifts count
   the arm-ticks per episode in which the expert would lift an arm clear of a finished
   fastener at full speed and the policy does not: where asynchronous execution loses
   its time. The expert is the floor. The last line is JSON with the default method's
   headline figures (success at 80 ms).

Run: ``python bench/policy.py [--realtime] [--episodes N] [--sim-only]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# Run as ``python bench/policy.py`` this file's folder comes first on sys.path and its own
# name would shadow the ``policy`` package: measure this checkout's package instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from policy.data import LIFT_DIMS, full_lift  # noqa: E402
from policy.evaluate import EVAL_SEED0, run_expert, wilson  # noqa: E402
from policy.exec_config import ExecConfig, ExecMode  # noqa: E402
from policy.executor import MonotonicClock, RealTimeExecutor  # noqa: E402
from policy.latency import LatencyInjector  # noqa: E402
from policy.local import LocalPolicy  # noqa: E402
from policy.runtime import load_policy  # noqa: E402
from policy.simtime import SimTimeRunner  # noqa: E402
from robot.env import CellEnv  # noqa: E402
from robot.jobs import Task  # noqa: E402
from robot.schema import ACTION_DIM, MAX_STEP_M, Observation  # noqa: E402
from robot.sim.expert import fasten_target  # noqa: E402
from robot.sim.fasten import FastenTask  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def bench_inference(policy: LocalPolicy, n: int = 200) -> list[Observation]:
    env = CellEnv(Task.NUT_INSTALL, seed=EVAL_SEED0, render=True)
    obs = env.reset()
    observations = []
    for _ in range(20):
        observations.append(obs)
        obs, done = env.step(env.expert_action())
        if done:
            break
    prefix = np.zeros((3, ACTION_DIM), dtype=np.float32)
    full, one = [], []
    for i in range(n):
        o = observations[i % len(observations)]
        t0 = time.perf_counter()
        policy.infer(o, prefix)
        full.append(time.perf_counter() - t0)
    one_step = LocalPolicy(policy.model, policy.version, flow_steps=1)
    for i in range(n // 2):
        t0 = time.perf_counter()
        one_step.infer(observations[i % len(observations)], prefix)
        one.append(time.perf_counter() - t0)
    p50, p99, floor = pct(full, 50), pct(full, 99), pct(one, 50)
    print(
        f"== inference latency (CPU, 2 threads, {policy.model.cfg.flow_steps} flow steps, "
        "prefix 3) =="
    )
    print(f"p50 {p50 * 1e3:.1f} ms  p99 {p99 * 1e3:.1f} ms")
    print(f"p50 / control period (33.3 ms) = {p50 * 30:.2f}   p99 / period = {p99 * 30:.2f}")
    print(f"p50 / one-flow-step floor ({floor * 1e3:.1f} ms) = {p50 / floor:.2f}")
    return observations


class ReplayPolicy:
    """Returns recorded model chunks in turn (the control-loop bench measures the loop)."""

    def __init__(self, chunks: list[np.ndarray]) -> None:
        self._chunks = chunks
        self._i = 0
        self.version = "replay"

    def reset(self) -> None:
        self._i = 0

    def infer(self, obs: Observation, prefix: np.ndarray | None = None) -> np.ndarray:
        c = self._chunks[self._i % len(self._chunks)].copy()
        self._i += 1
        if prefix is not None and len(prefix):
            c[: len(prefix)] = prefix
        return c


class LoopIO:
    """A robot stand-in for the timing loop: constant observation, actions counted."""

    def __init__(self, obs: Observation) -> None:
        self._obs = obs
        self.sent = 0

    def observe(self) -> Observation:
        return self._obs

    def act(self, action: np.ndarray) -> bool:
        self.sent += 1
        return False


def bare_loop_jitter(hz: float, ticks: int) -> tuple[float, int]:
    clock, dt = MonotonicClock(), 1.0 / hz
    t0 = clock.now()
    starts = []
    misses = 0
    for k in range(ticks):
        clock.sleep_until(t0 + k * dt)
        starts.append(clock.now())
        if clock.now() > t0 + (k + 1) * dt:
            misses += 1
    periods = np.diff(starts)
    return float(np.percentile(np.abs(periods - dt), 99)), misses


def bench_loop(policy: LocalPolicy, observations: list[Observation], realtime: bool) -> None:
    scale = 1.0 if realtime else 0.1
    hz = 30.0 / scale
    ticks = 10_000
    chunks = [policy.infer(o) for o in observations[:8]]
    floor, floor_miss = bare_loop_jitter(hz, ticks)
    print(
        f"\n== control loop at {hz:.0f} Hz, {ticks} ticks per run "
        f"({'real time' if realtime else 'time-scaled x10: latencies scaled by 0.1'}) =="
    )
    print(f"floor (bare loop): jitter p99 {floor * 1e6:.0f} us, deadline misses {floor_miss}")
    for lat_ms in (0, 80, 200):
        scaled = lat_ms * scale
        cfg = ExecConfig(mode=ExecMode.PREFIX, hz=hz)
        io = LoopIO(observations[0])
        ex = RealTimeExecutor(
            ReplayPolicy(chunks),
            io,
            cfg,
            latency=LatencyInjector(f"fixed:{scaled}"),
            segment=lambda o: 0,
        )
        rep = ex.run(ticks)
        s = rep.stats
        jit = rep.jitter_p99_s(cfg.dt)
        print(
            f"latency {lat_ms:3d} ms (injected {scaled:.0f} ms): jitter p99 {jit * 1e6:.0f} us "
            f"= {jit / max(floor, 1e-9):.2f} x floor = {jit / cfg.dt:.3f} of a period; "
            f"deadline misses {s.deadline_misses}/{s.ticks} "
            f"({100 * s.deadline_misses / max(s.ticks, 1):.2f}%); empty-queue ticks "
            f"{s.empty_queue_ticks}; oldest action {max(s.action_ages)} ticks"
        )


METHODS = (ExecMode.SYNC, ExecMode.PREFIX, ExecMode.NAIVE, ExecMode.BLEND, ExecMode.RTC)
LATENCIES_MS = (80, 200)
#: Synchronous execution with a longer execution horizon, the reference beside ``sync``.
SYNC_LONG = 10
UNJOINED = "prefix/join0"
AT_AGE = "prefix/at-age"


@dataclass
class Figures:
    """One method at one latency over the seeds: means and boundary smoothness."""

    ticks: float
    cycle_s: float
    successes: int
    episodes: int
    boundary_jump: float  # mean jump at a chunk boundary / median within-chunk step
    median_jump: float  # median jump at a chunk boundary / median within-chunk step
    jump_over_mean: float  # mean jump at a chunk boundary / mean within-chunk step
    interior: float  # mean within-chunk step / median within-chunk step
    late_lift: float  # arm-ticks per episode the expert would lift clear and the policy not


class LateLifts:
    """A ``SimTimeRunner.run`` hook for one episode of ``env``: ``count`` is its
    late-lifting arm-ticks so far. A tick where the expert wants to lift an arm clear at
    full speed (``policy.data.full_lift`` of its target, before its vertical ramp) and
    the policy does not lift is time lost to not seeing, or not believing, that the work
    is done. A ramped lift counts until it passes a third of full speed (the expert's own
    ramp from following a nut down: two ticks)."""

    def __init__(self, env: CellEnv) -> None:
        assert isinstance(env.task, FastenTask)
        self.task = env.task
        self.count = 0

    def __call__(self, action: np.ndarray) -> None:
        expert_lifts = full_lift(fasten_target(self.task))
        self.count += int(np.sum(expert_lifts & (action[LIFT_DIMS] < MAX_STEP_M / 3)))


def run_method(policy: LocalPolicy, config: ExecConfig, lat_ms: int, episodes: int) -> Figures:
    ticks, cycle, ok = [], [], 0
    jumps: list[float] = []
    steps: list[float] = []
    late = 0
    for i in range(episodes):
        env = CellEnv(Task.NUT_INSTALL, seed=EVAL_SEED0 + i, render=True)
        latency = LatencyInjector(f"fixed:{lat_ms}", seed=i)
        lifts = LateLifts(env)
        stats, _ = SimTimeRunner(policy, config, latency=latency).run(
            env, env.max_steps + 1, on_tick=lifts
        )
        late += lifts.count
        out = env.outcome()
        ticks.append(out.steps)
        cycle.append(out.cycle_time_s)
        ok += out.success
        jumps += stats.boundary_jumps
        steps += stats.within_steps
    moving = [s for s in steps if s > 0]
    typical = float(np.median(moving)) if moving else float("nan")
    mean_step = float(np.mean(steps)) if steps else float("nan")
    nan = float("nan")
    return Figures(
        ticks=float(np.mean(ticks)),
        cycle_s=float(np.mean(cycle)),
        successes=ok,
        episodes=episodes,
        boundary_jump=float(np.mean(jumps)) / typical if jumps else nan,
        median_jump=float(np.median(jumps)) / typical if jumps else nan,
        jump_over_mean=float(np.mean(jumps)) / mean_step if jumps else nan,
        interior=mean_step / typical,
        late_lift=late / episodes,
    )


def describe(f: Figures, ref: Figures) -> str:
    """One table row's figures, ``ref`` being synchronous execution at the same delay."""
    lo, hi = wilson(f.successes, f.episodes)
    jump = (
        "n/a (holds between chunks)"
        if np.isnan(f.boundary_jump)
        else f"{f.boundary_jump:.2f} (median {f.median_jump:.2f}; interior floor "
        f"{f.interior:.2f}), over the mean step {f.jump_over_mean:.2f}"
    )
    return (
        f"ticks {f.ticks:6.1f} = {f.ticks / ref.ticks:.2f} x sync; cycle {f.cycle_s:5.2f} s = "
        f"{f.cycle_s / ref.cycle_s:.3f} x sync; success {f.successes}/{f.episodes} "
        f"[95% {100 * lo:.0f}-{100 * hi:.0f}%]; boundary jump / median step {jump}; "
        f"late lifts {f.late_lift:.1f} arm-ticks"
    )


def bench_methods(policy: LocalPolicy, episodes: int) -> dict[str, object]:
    """Every execution method at 80 and 200 ms against synchronous execution; returns the
    default method's headline figures."""
    print(f"\n== execution methods in simulated time (nut installation, {episodes} seeds) ==")
    expert = [run_expert(CellEnv(Task.NUT_INSTALL, seed=EVAL_SEED0 + i)) for i in range(episodes)]
    print(
        f"floor (expert, no inference delay): {np.mean([o.steps for o in expert]):.1f} "
        f"policy ticks, cycle {np.mean([o.cycle_time_s for o in expert]):.2f} s"
    )
    fig: dict[tuple[str, int], Figures] = {}
    runs = [(m.value, ExecConfig(mode=m)) for m in METHODS]
    runs.append((UNJOINED, ExecConfig(mode=ExecMode.PREFIX, join_ticks=0)))
    runs.append((AT_AGE, ExecConfig(mode=ExecMode.PREFIX, continuous_from_ticks=0)))
    runs.append((f"sync/{SYNC_LONG}", ExecConfig(mode=ExecMode.SYNC, replan_every=SYNC_LONG)))
    for lat in LATENCIES_MS:
        for name, config in runs:
            f = fig[name, lat] = run_method(policy, config, lat, episodes)
            print(f"{lat:3d} ms {name:12s}: {describe(f, fig[ExecMode.SYNC.value, lat])}")
    default = ExecConfig().mode.value
    a80, s80 = fig[default, 80], fig[ExecMode.SYNC.value, 80]
    a200, b200 = fig[default, 200], fig[ExecMode.BLEND.value, 200]
    s200 = fig[ExecMode.SYNC.value, 200]
    return {
        "method": default,
        "async_over_sync_ticks_80ms": round(a80.ticks / s80.ticks, 3),
        "async_over_sync_cycle_80ms": round(a80.cycle_s / s80.cycle_s, 3),
        "boundary_jump_200ms": round(a200.boundary_jump, 2),
        "blend_boundary_jump_200ms": round(b200.boundary_jump, 2),
        "boundary_jump_over_mean_step_200ms": round(a200.jump_over_mean, 2),
        "blend_boundary_jump_over_mean_step_200ms": round(b200.jump_over_mean, 2),
        "join_ticks": ExecConfig().settled_join_ticks(policy),
        "unjoined_boundary_jump_200ms": round(fig[UNJOINED, 200].boundary_jump, 2),
        "unjoined_over_sync_ticks_80ms": round(fig[UNJOINED, 80].ticks / s80.ticks, 3),
        "unjoined_success_200ms": round(fig[UNJOINED, 200].successes / episodes, 3),
        "success_async_200ms": round(a200.successes / episodes, 3),
        "continuous_from_ticks": ExecConfig().continuous_from_ticks,
        "at_age_success_200ms": round(fig[AT_AGE, 200].successes / episodes, 3),
        "at_age_over_sync_ticks_200ms": round(fig[AT_AGE, 200].ticks / s200.ticks, 3),
        "async_over_sync_ticks_200ms": round(a200.ticks / s200.ticks, 3),
        "success_sync_200ms": round(s200.successes / episodes, 3),
        "async_over_sync10_ticks_80ms": round(a80.ticks / fig[f"sync/{SYNC_LONG}", 80].ticks, 3),
        "success_async": round(a80.successes / a80.episodes, 3),
        "success_sync": round(s80.successes / s80.episodes, 3),
        "episodes": episodes,
        "late_lift_async_80ms": round(a80.late_lift, 1),
        "late_lift_sync_80ms": round(s80.late_lift, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--realtime", action="store_true", help="true 30 Hz control loop")
    ap.add_argument("--episodes", type=int, default=50, help="simulator seeds per figure")
    ap.add_argument("--sim-only", action="store_true", help="only the simulator figures (3)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    policy = load_policy(Task.NUT_INSTALL)
    assert isinstance(policy, LocalPolicy)
    print(f"policy {policy.version}")
    if not args.sim_only:
        observations = bench_inference(policy)
        bench_loop(policy, observations, args.realtime)
    print(json.dumps(bench_methods(policy, args.episodes)))


if __name__ == "__main__":
    main()
