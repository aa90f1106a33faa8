"""The improvement loop on the simulated line: a casting with a changed stud pattern, its
failures captured through the real record, exported, the policy retrained from the
record, first-pass yield before and after.

The variant: housing B carries four M8 studs per side instead of housing A's three (the
same pitch, so its outer studs sit where the shipped nut installation policy never saw
one). The scripted expert handles it as it handles housing A (the before line prints its
yield on the same seeds); the shipped policy misses most outer studs.

1. Line: ``intern demo --parts N`` on a one-station line config whose ST10 runs housing
   B (written into a temporary folder; embedded PostgreSQL and Redis there), the shipped
   policy driving, every job's episode kept in the episode store, one row per episode on
   record.
2. Export: ``intern episodes export --nok --station ST10`` writes the station's episodes,
   failures included, as one LeRobotDataset (what a policy team outside the plant would
   take); its episodes and frames are printed.
3. Retrain: ``intern policy train-from-record --station ST10`` chooses the station's NOK
   episodes and as many OK ones from the record, has the expert correct the failures and
   continues the station's checkpoint; it writes a new version into the plant's store.
4. Evaluate the shipped and the new version on the same ``--seeds`` held-out seeds of
   housing B (``policy.evaluate``; never the line's seeds): first-pass yield with its 95 %
   Wilson interval, mean cycle time and the share within the 76 s takt; and both on
   housing A, to show what the new one kept.

The last line is JSON: ``fpy_before``, ``fpy_before_ci``, ``fpy_after``, ``fpy_after_ci``,
``episodes_used``, ``train_s``, ``seeds`` (and the expert's and housing A's figures).

    python bench/loop.py --parts 80 --seeds 200
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as ``python bench/loop.py`` this file's folder comes first on sys.path and its
# policy.py would shadow the ``policy`` package: use this checkout's package instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

STATION = "ST10"
PER_SIDE = 4  # housing B's studs per side (housing A, the shipped recipe: 3)


def variant_config(folder: Path) -> tuple[Path, dict[str, Any]]:
    """The sample line cut to ST10 and robot R1, ST10 running housing B (housing A's
    fastener windows on four positions a side); the config's path and that recipe."""
    import yaml

    from cell.config import sample_config_path

    doc = yaml.safe_load(sample_config_path().read_text(encoding="utf-8"))
    st10 = next(s for s in doc["stations"] if s["id"] == STATION)
    windows = st10["recipes"][0]["fasteners"][0]
    recipe = {
        "program_no": 1,
        "name": f"Housing B, {PER_SIDE}+{PER_SIDE} self-tapping M8 nuts",
        "task": "nut_install",
        "takt_s": 76,
        "on_nok": "continue",  # nobody clears a hold on an unattended bench line
        "fasteners": [
            windows | {"position": p, "side": side}
            for side in ("left", "right")
            for p in range(1, PER_SIDE + 1)
        ],
    }
    st10["recipes"] = [recipe]
    doc["stations"] = [st10]
    doc["robots"] = [r for r in doc["robots"] if r["id"] == "R1"]
    path = folder / "housing_b_line.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path, recipe


def intern(args: list[str], data: Path, log: Path) -> str:
    """Run ``intern ARGS`` on the embedded servers in ``data``; its output (also kept in
    ``log``). Exits with the command's own words when it fails."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("INTERN_DATABASE_URL", "INTERN_REDIS_URL")
    }
    env |= {"INTERN_DATA_DIR": str(data), "INTERN_LINE_CONFIG": "", "INTERN_POLICY": "auto"}
    done = subprocess.run(
        [sys.executable, "-m", "cell", *args], env=env, capture_output=True, text=True
    )
    with log.open("a", encoding="utf-8") as f:
        f.write(f"$ intern {' '.join(args)}\n{done.stdout}{done.stderr}\n")
    if done.returncode != 0:
        raise SystemExit(f"intern {args[0]} failed ({done.returncode}); see {log}")
    return done.stdout


def json_block(out: str) -> dict[str, Any]:
    """The JSON object a command printed on lines of their own ('{' ... '}')."""
    lines = out.splitlines()
    start = lines.index("{")
    end = lines.index("}", start)
    return dict(json.loads("\n".join(lines[start : end + 1])))


def fpy(folder: Path, seeds: int, fasteners: Any, *, expert: bool = False) -> dict[str, Any]:
    """First-pass yield of the checkpoint in ``folder`` on the evaluation seeds."""
    from policy.evaluate import evaluate
    from policy.local import LocalPolicy
    from robot.jobs import Task

    return evaluate(
        LocalPolicy.load(folder), Task.NUT_INSTALL, seeds, fasteners=fasteners, with_expert=expert
    )


def show(name: str, r: dict[str, Any]) -> None:
    lo, hi = r["ci95"]
    print(
        f"  {name:22s} {r['success_rate']:6.1%} (95 % {lo:.1%}-{hi:.1%}) over "
        f"{r['episodes']} seeds; cycle {r['cycle_time_s_mean']:.1f} s, "
        f"{r['within_takt']:.0%} within takt; failures {r['failures'] or 'none'}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", type=int, default=80, help="housing B parts through the line")
    ap.add_argument("--seeds", type=int, default=200, help="evaluation seeds")
    ap.add_argument("--housing-a-seeds", type=int, default=50, help="seeds on housing A")
    ap.add_argument("--steps", type=int, help="training steps (default: the command's)")
    ap.add_argument("--lr", type=float, help="learning rate (default: the command's)")
    ap.add_argument("--rounds", type=int, help="correction rounds (default: the command's)")
    ap.add_argument("--minutes", type=float, default=30.0, help="training wall-time budget")
    ap.add_argument("--keep", type=Path, help="keep the line's data here (default: temporary)")
    args = ap.parse_args()

    import torch

    from policy.runtime import checkpoint_dir
    from robot.jobs import FastenerSpec, Task

    torch.set_num_threads(1)
    base = checkpoint_dir(Task.NUT_INSTALL)
    with tempfile.TemporaryDirectory(prefix="intern-loop-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        (config, recipe), data, log = variant_config(work), work / "data", work / "loop.log"
        housing_b = tuple(FastenerSpec.model_validate(f) for f in recipe["fasteners"])
        print(f"line: {recipe['name']} on {STATION}; commands and their output in {log}")

        t0 = time.monotonic()
        intern(["demo", "--parts", str(args.parts), "--config", str(config)], data, log)
        print(f"1. intern demo --parts {args.parts}: {time.monotonic() - t0:.0f} s")
        export = work / "export"
        intern(
            [
                "episodes",
                "export",
                "--nok",
                "--station",
                STATION,
                "--out",
                str(export),
                "--config",
                str(config),
            ],
            data,
            log,
        )
        info = json.loads((export / "meta" / "info.json").read_text())
        print(
            f"2. exported {STATION}'s episodes: {info['total_episodes']} episodes, "
            f"{info['total_frames']} frames (LeRobotDataset {info['codebase_version']})"
        )
        train = ["policy", "train-from-record", "--station", STATION, "--config", str(config)]
        train += ["--minutes", str(args.minutes)]
        train += ["--steps", str(args.steps)] if args.steps else []
        train += ["--lr", str(args.lr)] if args.lr else []
        train += ["--rounds", str(args.rounds)] if args.rounds is not None else []
        t1 = time.monotonic()
        summary = json_block(intern(train, data, log))
        train_s = time.monotonic() - t1
        used = summary["from_record"]["failures"] + summary["from_record"]["successes"]
        print(
            f"3. {summary['continued_from']} -> {summary['version']}: "
            f"{summary['from_record']['failures']} NOK + {summary['from_record']['successes']} "
            f"OK episodes, {summary['steps']} steps, {train_s:.0f} s (labelling included)"
        )
        before = fpy(base, args.seeds, housing_b, expert=True)
        after = fpy(Path(summary["folder"]), args.seeds, housing_b)
        kept_a = fpy(Path(summary["folder"]), args.housing_a_seeds, None)
        base_a = fpy(base, args.housing_a_seeds, None)
    print("4. first-pass yield")
    show("expert, housing B", before["expert"])
    show("before, housing B", before["policy"])
    show("after, housing B", after["policy"])
    show("before, housing A", base_a["policy"])
    show("after, housing A", kept_a["policy"])
    b, a = before["policy"], after["policy"]
    print(
        json.dumps(
            {
                "fpy_before": b["success_rate"],
                "fpy_before_ci": b["ci95"],
                "fpy_after": a["success_rate"],
                "fpy_after_ci": a["ci95"],
                "episodes_used": used,
                "train_s": round(train_s, 1),
                "seeds": args.seeds,
                "expert_fpy": before["expert"]["success_rate"],
                "housing_a_before": base_a["policy"]["success_rate"],
                "housing_a_after": kept_a["policy"]["success_rate"],
                "cycle_s_before": b["cycle_time_s_mean"],
                "cycle_s_after": a["cycle_time_s_mean"],
                "within_takt_after": a["within_takt"],
            }
        )
    )


if __name__ == "__main__":
    main()
