"""Kill the line orchestrator with SIGKILL mid-job many times and count every way the
robot, the PLC and the record could come to disagree.

Per scenario the sample line runs for real (PLC simulator in this process, one robot
worker process per robot, ``intern run`` processes; see ``tests/cell/line/kills.py``):

* ``kill``: one orchestrator, killed while a station is mid-job and restarted after
  1-5 s, ``--kills`` times;
* ``kill-pg-down``: the same on a PostgreSQL of its own that stops after the first kill
  and returns before the last, so the orchestrator restarts with it down (outbox);
* ``failover``: two orchestrators on station leases; the active one is killed and
  restarted as the standby; takeover = kill to the first PLC write per station.

Counts that must be zero: jobs the PLC latched with no row (lost), rows twice for one job
or one part (duplicates), a job key started twice on a robot (executed twice), a robot
starting or ending a job after the PLC latched its result (robot after PLC done), a NOK
row for a job its robot ended OK (false NOK), and latched jobs whose row is not the
robot's report (not robot result; printed, not in the JSON). Failover also fails when
takeover p99 exceeds 10 s.

    python bench/faults.py --kills 10 --scenario all --seed 1

Prints one line per scenario, then ONE line of JSON (a list, one object per scenario with
keys scenario, kills, jobs, lost, duplicates, executed_twice, robot_after_plc_done,
false_nok, takeover_p50_s, takeover_p99_s); exits 1 when a scenario fails or cannot
finish. Needs INTERN_DATABASE_URL (a server where it may create and drop a database per
scenario) and INTERN_REDIS_URL, on whose server it takes an empty database (``--redis-db``,
else the first empty one of 10-15) and empties it after each scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.cell.line.kills


from scratch_db import drop_db, fresh_db

from tests.cell.line.kill_analysis import JSON_KEYS
from tests.cell.line.kill_rig import claim_redis_db, release_redis_db
from tests.cell.line.kills import SCENARIOS, KillPlan, KillReport, run_scenario

RESTART_AFTER_S = (1.0, 5.0)


def human(report: KillReport) -> str:
    def secs(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    failures = report.failures()
    verdict = "FAIL (" + "; ".join(failures) + ")" if failures else "ok"
    return (
        f"{report.scenario}: {report.kills} kills, {report.jobs} jobs, lost {report.lost}, "
        f"duplicates {report.duplicates}, executed twice {report.executed_twice}, "
        f"robot after PLC done {report.robot_after_plc_done}, false NOK {report.false_nok}, "
        f"not the robot's result {report.not_robot_result}, takeover p50/p99 "
        f"{secs(report.takeover_p50_s)}/{secs(report.takeover_p99_s)} s: {verdict}"
    )


def run_one(
    scenario: str, args: argparse.Namespace, server_url: str, redis_server: str, work: Path
) -> KillReport:
    if args.redis_db is not None:
        redis_url = claim_redis_db(redis_server, "bench/faults.py", [args.redis_db])
    else:
        redis_url = claim_redis_db(redis_server, "bench/faults.py")
    if redis_url is None:
        which = f"database {args.redis_db} is" if args.redis_db is not None else "10-15 are"
        raise SystemExit(f"Redis at {redis_server}: {which} in use; stop the other run first")
    db = fresh_db(server_url, "intern_faults") if scenario != "kill-pg-down" else ""
    plan = KillPlan(scenario, kills=args.kills, seed=args.seed, restart_after_s=RESTART_AFTER_S)
    try:
        return asyncio.run(run_scenario(plan, work / scenario, redis_url, db))
    finally:
        release_redis_db(redis_url)
        if db:
            drop_db(server_url, db)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=10, help="kills per scenario (default 10)")
    ap.add_argument("--scenario", choices=("all", *SCENARIOS), default="all")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill and restart times")
    ap.add_argument(
        "--redis-db",
        type=int,
        default=None,
        help="an empty Redis database to use and empty after (default: the first empty of 10-15)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the logs and print where")
    args = ap.parse_args()
    # The simulator's server warns at start that plain mode has no security: known here.
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    if args.kills < 1:
        ap.error("--kills must be at least 1")
    server_url = os.environ.get(
        "INTERN_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ).replace("postgresql://", "postgresql+psycopg://", 1)
    redis_server = os.environ.get("INTERN_REDIS_URL", "redis://127.0.0.1:6379/0")
    scenarios = SCENARIOS if args.scenario == "all" else (args.scenario,)
    work = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    results: list[dict[str, object]] = []
    failed = False
    for scenario in scenarios:
        try:
            report = run_one(scenario, args, server_url, redis_server, work)
        except AssertionError as exc:  # the line stopped serving: a wait ran out
            print(f"{scenario}: could not finish: {exc}", flush=True)
            results.append(dict.fromkeys(JSON_KEYS) | {"scenario": scenario})
            failed = True
            continue
        print(human(report), flush=True)
        for problem in report.problems[:10]:
            print(f"    {problem}", flush=True)
        results.append(report.as_json())
        failed = failed or bool(report.failures())
    if args.keep:
        print(f"logs kept in {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
