"""Simulator speed and memory for one cell on one core.

Figures, each against a floor measured in the same run:

* real-time factor = simulated seconds per wall second, with and without cameras (the
  floor is real time, 1.0; goals: >= 30 without cameras, >= 5 with). Scripted phases
  (walking, fetching, verifying) cost simulated time but no control ticks, so the factor
  over the control ticks alone is printed too;
* the same tick count run as a bare numpy loop (clip and add of one action per tick):
  the simulator's cost per tick as a multiple of that loop's, comparable across machines;
* memory per cell: the traced Python peak of one episode with cameras, and the resident
  size growth per live cell over 20 cells held at once.

Run: ``python bench/sim.py [--task nut_install] [--episodes 40] [--render-episodes 8]``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

from robot.env import CellEnv, rollout  # noqa: E402
from robot.jobs import Task  # noqa: E402
from robot.schema import ACTION_DIM, DT, clip_action  # noqa: E402


def pin_one_core() -> str:
    """Run on a single CPU (the first allowed) where the platform allows it."""
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to cpu {cpu}"
    except (AttributeError, OSError):
        return "not pinned"


def run(task: Task, seeds: range, render: bool) -> tuple[float, float, int]:
    """(simulated s, wall s, ticks) of expert episodes on ``seeds``."""
    sim = 0.0
    ticks = 0
    start = time.perf_counter()
    for seed in seeds:
        out = rollout(CellEnv(task, seed=seed, render=render))
        sim += out.sim_time_s
        ticks += out.steps
    return sim, time.perf_counter() - start, ticks


def bare_loop(ticks: int) -> float:
    """Wall seconds of ``ticks`` iterations of the cheapest per-tick numpy work."""
    pos = np.zeros(ACTION_DIM, dtype=np.float32)
    action = np.full(ACTION_DIM, 0.001, dtype=np.float32)
    start = time.perf_counter()
    for _ in range(ticks):
        pos = pos + clip_action(action)
    return time.perf_counter() - start


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory(task: Task) -> tuple[float, float]:
    """(traced peak MiB of one episode with cameras, RSS MiB per live cell over 20)."""
    gc.collect()
    tracemalloc.start()
    rollout(CellEnv(task, seed=0, render=True))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    gc.collect()
    before = rss_bytes()
    cells = []
    for seed in range(20):
        env = CellEnv(task, seed=seed, render=True)
        env.reset()
        for _ in range(10):
            env.step(env.expert_action())
        cells.append(env)
    grown = rss_bytes() - before
    del cells
    return peak / 2**20, grown / 20 / 2**20


def report(label: str, sim: float, wall: float, ticks: int, goal: float) -> None:
    floor = bare_loop(ticks)
    rtf = sim / wall
    print(f"{label}: {ticks} ticks, {sim:.0f} simulated s in {wall:.2f} wall s")
    print(
        f"  real-time factor {rtf:.1f}x (floor: real time 1.0x; goal >= {goal:g}x: "
        f"{'met' if rtf >= goal else 'NOT met'})"
    )
    print(f"  control ticks alone: {ticks * DT / wall:.1f}x real time")
    print(
        f"  same-run floor: bare numpy loop of {ticks} ticks took {floor * 1e3:.1f} ms; "
        f"a simulated tick costs {wall / max(floor, 1e-9):.0f}x a bare tick"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", type=Task, default=Task.NUT_INSTALL)
    p.add_argument("--episodes", type=int, default=40)
    p.add_argument("--render-episodes", type=int, default=8)
    args = p.parse_args()
    print(f"simulator bench, {args.task.value}, expert driving, {pin_one_core()}")
    rollout(CellEnv(args.task, seed=10_000, render=True))  # warm imports and caches
    sim, wall, ticks = run(args.task, range(args.episodes), render=False)
    report("without cameras", sim, wall, ticks, goal=30)
    sim, wall, ticks = run(args.task, range(args.render_episodes), render=True)
    report("with 3 cameras", sim, wall, ticks, goal=5)
    peak, per_cell = memory(args.task)
    print(
        f"memory per cell: traced peak {peak:.2f} MiB for one episode with cameras; "
        f"RSS growth {per_cell:.2f} MiB per live cell (20 held)"
    )


if __name__ == "__main__":
    main()
