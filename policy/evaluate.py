"""Evaluation in the simulator: the policy beside the scripted expert on the same seeds.

The policy runs as deployed: asynchronous chunks with a committed prefix and a simulated
inference delay (``latency``), through ``policy.simtime.SimTimeRunner``. The expert runs
on the same seeds. Reported per side: success rate with a 95% Wilson interval,
failure-mode counts, mean cycle time, share within takt.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from policy.exec_config import ExecConfig, ExecMode
from policy.latency import LatencyInjector
from policy.simtime import SimTimeRunner
from robot.chunk_policy import ChunkPolicy
from robot.jobs import FastenerSpec, Task

EVAL_SEED0 = 500_000  # training seeds are seed * 1_000_000 + i with i far below this


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for ``k`` successes in ``n`` trials."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


@dataclass
class Tally:
    """Outcomes of one driver (policy or expert) over the evaluation seeds."""

    name: str
    successes: int = 0
    episodes: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    cycle_times: list[float] = field(default_factory=list)
    within_takt: int = 0
    per_seed: list[bool] = field(default_factory=list)

    def add(self, outcome: Any) -> None:
        self.episodes += 1
        self.successes += bool(outcome.success)
        self.per_seed.append(bool(outcome.success))
        if not outcome.success:
            self.failures[outcome.failure or "unfinished"] += 1
        self.cycle_times.append(float(outcome.cycle_time_s))
        self.within_takt += bool(outcome.within_takt)

    @property
    def rate(self) -> float:
        return self.successes / max(self.episodes, 1)

    def summary(self) -> dict[str, Any]:
        lo, hi = wilson(self.successes, self.episodes)
        return {
            "name": self.name,
            "episodes": self.episodes,
            "success_rate": self.rate,
            "ci95": [lo, hi],
            "failures": dict(self.failures.most_common()),
            "cycle_time_s_mean": float(np.mean(self.cycle_times)) if self.cycle_times else 0.0,
            "within_takt": self.within_takt / max(self.episodes, 1),
        }


def run_expert(env: Any) -> Any:
    env.reset()
    done = False
    while not done:
        _, done = env.step(env.expert_action())
    return env.outcome()


def evaluate(
    policy: ChunkPolicy,
    task: Task,
    episodes: int,
    *,
    difficulty: float = 1.0,
    latency: str = "fixed:80",
    config: ExecConfig | None = None,
    seed0: int = EVAL_SEED0,
    with_expert: bool = True,
    fasteners: Sequence[FastenerSpec] | None = None,
    progress: Callable[[int, Tally, Tally | None], None] | None = None,
) -> dict[str, Any]:
    """Run ``episodes`` seeds; returns policy and expert summaries plus executor counters.
    ``fasteners`` is the recipe the parts are made with (None: the task's default)."""
    from robot.env import CellEnv

    cfg = (config or ExecConfig()).for_policy(policy)
    pol, exp = Tally("policy"), Tally("expert") if with_expert else None
    empty = ages = 0
    for i in range(episodes):
        seed = seed0 + i
        env = CellEnv(task, seed=seed, difficulty=difficulty, render=True, fasteners=fasteners)
        runner = SimTimeRunner(
            policy,
            cfg,
            latency=LatencyInjector(latency, seed=seed),
            horizon=int(getattr(policy, "horizon", 30)),
        )
        stats, _ = runner.run(env, env.max_steps + 1)
        pol.add(env.outcome())
        empty += stats.empty_queue_ticks
        ages = max(ages, max(stats.action_ages, default=0))
        if exp is not None:
            exp_env = CellEnv(
                task, seed=seed, difficulty=difficulty, render=False, fasteners=fasteners
            )
            exp.add(run_expert(exp_env))
        if progress is not None:
            progress(i + 1, pol, exp)
    out: dict[str, Any] = {
        "task": task.value,
        "difficulty": difficulty,
        "latency": latency,
        "mode": cfg.mode.value,
        "replan_age": None if cfg.mode is ExecMode.SYNC else cfg.replan_age,
        "join_ticks": cfg.join_ticks if cfg.mode is ExecMode.PREFIX else None,
        "continuous_from_ticks": None if cfg.mode is ExecMode.SYNC else cfg.continuous_from_ticks,
        "version": policy.version,
        "policy": pol.summary(),
        "executor": {"empty_queue_ticks": empty, "max_action_age": ages},
    }
    if exp is not None:
        out["expert"] = exp.summary()
        out["gap_points"] = 100 * (exp.rate - pol.rate)
    return out


def format_report(r: dict[str, Any]) -> str:
    lines = [
        f"task {r['task']}  difficulty {r['difficulty']}  policy {r['version']}  "
        f"execution {r['mode']} with latency {r['latency']}"
        + (f", replan age {r['replan_age']} ticks" if r.get("replan_age") else "")
        + (f", chunks joined over {r['join_ticks']} ticks" if r.get("join_ticks") else "")
        + (
            f", continuous from a delay of {r['continuous_from_ticks']} ticks"
            if r.get("continuous_from_ticks")
            else ""
        )
    ]
    for key in ("policy", "expert"):
        s = r.get(key)
        if not s:
            continue
        lo, hi = s["ci95"]
        fails = ", ".join(f"{k} {v}" for k, v in s["failures"].items()) or "none"
        lines.append(
            f"  {key:7s} success {100 * s['success_rate']:5.1f}% "
            f"[95% CI {100 * lo:.1f}-{100 * hi:.1f}] over {s['episodes']}  "
            f"cycle {s['cycle_time_s_mean']:.1f} s  within takt {100 * s['within_takt']:.0f}%"
        )
        lines.append(f"          failures: {fails}")
    if "gap_points" in r:
        lines.append(f"  expert minus policy: {r['gap_points']:.1f} points")
    ex = r["executor"]
    lines.append(
        f"  executor: empty-queue ticks {ex['empty_queue_ticks']}, "
        f"oldest action executed {ex['max_action_age']} ticks"
    )
    return "\n".join(lines)
