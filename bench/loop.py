"""The improvement loop on the simulator: a harder part variant on the line, its failures
recorded, the policy continued on them, first-pass yield before and after.

1. Line: ``--jobs`` jobs of ``--task`` at ``--difficulty`` (harder than the training's
   1.0) run by the base policy as the worker runs them (``robot.skills.run_job``,
   simulated asynchronous execution), each job's episode kept in a temporary episode
   store (``robot.job_episodes``), as the line's workers keep them.
2. Retrain: every NOK episode and ``--ok-share`` OK ones per NOK (newest first, as
   ``intern policy train-from-record`` selects them) go to ``policy.retrain.retrain``,
   which labels the failures with the scripted expert and continues the base checkpoint
   for ``--steps``; the new version lands in a temporary checkpoint store.
3. Evaluate both versions on the same ``--seeds`` held-out seeds (``policy.evaluate``,
   never the line's seeds) at the same difficulty: first-pass yield with its 95 % Wilson
   interval.

The last line is JSON: ``fpy_before``, ``fpy_before_ci``, ``fpy_after``, ``fpy_after_ci``,
``episodes_used``, ``train_s``, ``seeds``.

    python bench/loop.py --task nut_install --difficulty 2.5 --jobs 200 --seeds 200
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as ``python bench/loop.py`` this file's folder comes first on sys.path and its
# policy.py would shadow the ``policy`` package: use this checkout's package instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

LINE_SEED0 = 100_000  # line jobs: apart from training (seed * 1e6 + i) and evaluation seeds


def run_line(
    base: Path, task: Any, difficulty: float, jobs: int, store: Path
) -> tuple[list[Path], list[Path]]:
    """Run ``jobs`` jobs with the base policy; (NOK, OK) manifests, newest first."""
    from policy.local import LocalPolicy
    from policy.runtime import simulated_async
    from robot.job_episodes import EpisodeKeeper, EpisodeStore
    from robot.jobs import JobSpec, Outcome
    from robot.sim.config import default_fasteners
    from robot.skills import run_job

    policy = LocalPolicy.load(base)
    episodes = EpisodeStore(store)
    keeper = EpisodeKeeper(episodes)
    nok: list[Path] = []
    ok: list[Path] = []
    for i in range(jobs):
        spec = JobSpec(
            job_key=f"ST10:0:{i + 1}",
            station_id="ST10",
            robot_id="R1",
            part_id=f"P-{i + 1}",
            program_no=1,
            task=task,
            fasteners=default_fasteners(task),
            takt_s=76.0,
            seed=LINE_SEED0 + i,
            difficulty=difficulty,
        )
        out = keeper.keep(
            spec, run_job(spec, policy=simulated_async(policy, seed=i), tape=keeper.tape(spec))
        )
        if out.episode is None:
            continue
        (ok if out.error_code == 0 and out.outcome is Outcome.OK else nok).append(
            episodes.manifest_path(out.episode.path)
        )
    return nok[::-1], ok[::-1]


def fpy(folder: Path, task: Any, difficulty: float, seeds: int) -> dict[str, Any]:
    """First-pass yield of the checkpoint in ``folder`` over the evaluation seeds."""
    from policy.evaluate import evaluate
    from policy.local import LocalPolicy

    report = evaluate(
        LocalPolicy.load(folder), task, seeds, difficulty=difficulty, with_expert=False
    )
    return report["policy"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="nut_install")
    ap.add_argument("--difficulty", type=float, default=2.5, help="the harder part variant")
    ap.add_argument("--base", type=Path, help="checkpoint folder (default: the shipped one)")
    ap.add_argument("--jobs", type=int, default=200, help="line jobs run to find failures")
    ap.add_argument("--ok-share", type=float, default=1.0, help="OK episodes per NOK one")
    ap.add_argument("--steps", type=int, default=300, help="training steps")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-6, help="see cell.cli.retrain.LR")
    ap.add_argument("--seeds", type=int, default=200, help="evaluation seeds")
    args = ap.parse_args()

    import torch

    from policy.recipe import TrainConfig
    from policy.retrain import retrain
    from policy.runtime import checkpoint_dir
    from robot.jobs import Task

    torch.set_num_threads(1)
    task = Task(args.task)
    base = args.base or checkpoint_dir(task)
    with tempfile.TemporaryDirectory(prefix="intern-loop-") as tmp:
        t0 = time.monotonic()
        nok, ok = run_line(base, task, args.difficulty, args.jobs, Path(tmp) / "episodes")
        ok = ok[: round(args.ok_share * len(nok))]
        print(
            f"line: {args.jobs} jobs at difficulty {args.difficulty}: {len(nok)} NOK "
            f"({time.monotonic() - t0:.0f} s); training on {len(nok)} NOK + {len(ok)} OK"
        )
        if not nok:
            raise SystemExit("no NOK jobs on the line: nothing to learn; raise --difficulty")
        cfg = TrainConfig(
            task=task,
            out=Path(tmp),
            steps=args.steps,
            batch=args.batch,
            lr=args.lr,
            dagger_rounds=0,
            time_budget_min=60.0,
        )
        t1 = time.monotonic()
        summary = retrain(nok, ok, base, Path(tmp) / "checkpoints", cfg)
        train_s = time.monotonic() - t1
        before = fpy(base, task, args.difficulty, args.seeds)
        after = fpy(Path(summary["folder"]), task, args.difficulty, args.seeds)
    for name, r in (("before", before), ("after", after)):
        lo, hi = r["ci95"]
        print(
            f"FPY {name:6s} {r['success_rate']:.1%} (95 % {lo:.1%}-{hi:.1%}) "
            f"over {r['episodes']} seeds; failures {r['failures']}"
        )
    print(
        f"{summary['continued_from']} -> {summary['version']}: {len(nok) + len(ok)} "
        f"episodes, {summary['steps']} steps, {train_s:.0f} s (labelling included)"
    )
    print(
        json.dumps(
            {
                "fpy_before": before["success_rate"],
                "fpy_before_ci": before["ci95"],
                "fpy_after": after["success_rate"],
                "fpy_after_ci": after["ci95"],
                "episodes_used": len(nok) + len(ok),
                "train_s": round(train_s, 1),
                "seeds": args.seeds,
            }
        )
    )


if __name__ == "__main__":
    main()
