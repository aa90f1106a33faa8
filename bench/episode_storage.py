"""What keeping every job's episode costs on disk: bytes per job, with and without cameras,
and per plant-year.

Jobs of each task of the sample line run on the simulator and are kept in a temporary
episode store exactly as a robot worker keeps them (``robot.job_episodes``):

* ``expert``: the robot's own program, cameras off (what ``intern worker`` does for a
  job no policy drives): proprioception and actions only;
* ``cameras``: the same program with the cameras on, so the episode keeps its frames
  (every 3rd tick); the motion is the expert's, as a policy that does the job well;
* ``policy``: the shipped policy of the task (``policy.sources``, needs torch), cameras
  on, its chunks kept too (skipped with ``--no-policy``).

    python bench/episode_storage.py --jobs 5

Prints a table per mode and task (mean frames, kB per job, ms to write), then the yearly
figure for ``--stations`` stations at a ``--cycle-s`` cycle over ``--shifts`` shifts of
``--shift-h`` hours on ``--days`` working days, every cycle one job, and ONE line of JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from robot.base import make_robot
from robot.job_episodes import EpisodeKeeper, EpisodeStore
from robot.jobs import JobSpec, Task
from robot.sim.config import default_fasteners
from robot.sim.robot import SimRobot, SimRobotConfig
from robot.skills import drive, run_job

TAKT_S = 76.0


def _spec(task: Task, seed: int) -> JobSpec:
    return JobSpec(
        job_key=f"ST10:0:{seed}",
        station_id="ST10",
        robot_id="R1",
        part_id=f"P-{seed}",
        program_no=1,
        task=task,
        fasteners=default_fasteners(task),
        takt_s=TAKT_S,
        seed=seed,
    )


def _cameras_on(spec: JobSpec, keeper: EpisodeKeeper) -> Any:
    """The robot's own program with the cameras on, taped."""
    tape = keeper.tape(spec)
    config = SimRobotConfig.for_job(spec, cameras=True)
    with make_robot(SimRobot.name, config) as robot:
        robot.start_job(spec, cameras=True)
        drive(robot, None, tape)
    return run_job(spec)  # the same job's outcome (deterministic), for the manifest


def measure(mode: str, task: Task, jobs: int, root: Path) -> dict[str, Any]:
    """Run ``jobs`` jobs of ``task`` in ``mode`` and keep their episodes under ``root``."""
    keeper = EpisodeKeeper(EpisodeStore(root / mode))
    policies = None
    if mode == "policy":
        # Run as a script, this folder leads sys.path and its policy.py would shadow the
        # policy package.
        here = str(Path(__file__).resolve().parent)
        sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != here]
        from policy.sources import policy_for_jobs

        policies = policy_for_jobs("auto")
    sizes, frames, write_ms = [], [], []
    for seed in range(1, jobs + 1):
        spec = _spec(task, seed)
        if mode == "cameras":
            outcome = _cameras_on(spec, keeper)
        else:
            policy = None if policies is None else policies(spec)
            outcome = run_job(spec, policy=policy, tape=keeper.tape(spec))
        t0 = time.perf_counter()
        kept = keeper.keep(spec, outcome)
        write_ms.append((time.perf_counter() - t0) * 1000)
        assert kept.episode is not None, "the episode was not kept"
        sizes.append(kept.episode.bytes)
        frames.append(kept.episode.frames)
    return {
        "mode": mode,
        "task": task.value,
        "jobs": jobs,
        "frames": round(statistics.mean(frames)),
        "kb_per_job": round(statistics.mean(sizes) / 1000, 1),
        "write_ms": round(statistics.mean(write_ms), 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=5, help="jobs per task and mode")
    ap.add_argument("--no-policy", action="store_true", help="leave out the shipped policies")
    ap.add_argument("--stations", type=int, default=3)
    ap.add_argument("--cycle-s", type=float, default=TAKT_S)
    ap.add_argument("--shifts", type=int, default=2)
    ap.add_argument("--shift-h", type=float, default=8.0)
    ap.add_argument("--days", type=int, default=250, help="working days a year")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")
    modes = ["expert", "cameras"] + ([] if args.no_policy else ["policy"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            for task in Task:
                rows.append(measure(mode, task, args.jobs, Path(tmp)))
                r = rows[-1]
                print(
                    f"{mode:8s} {task.value:18s} {r['frames']:6d} frames "
                    f"{r['kb_per_job']:9.1f} kB/job  write {r['write_ms']:7.1f} ms"
                )
    jobs_year = round(args.stations * args.shifts * args.shift_h * 3600 / args.cycle_s * args.days)
    year = {}
    for mode in modes:
        per_job = statistics.mean(r["kb_per_job"] for r in rows if r["mode"] == mode) * 1000
        year[mode] = {
            "kb_per_job": round(per_job / 1000, 1),
            "gb_per_year": round(per_job * jobs_year / 1e9, 1),
        }
        print(
            f"{mode:8s} {per_job / 1000:9.1f} kB/job (mean of tasks) -> "
            f"{year[mode]['gb_per_year']:8.1f} GB per year for {jobs_year:,} jobs"
        )
    print(json.dumps({"jobs_per_year": jobs_year, "rows": rows, "year": year}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
