"""Kill the line orchestrator with SIGKILL mid-job, again and again, and then check that
the robots, the PLC and the record agree (``kill_analysis``). Used by
``test_orchestrator_kills.py`` (few kills) and ``bench/faults.py`` (many).

Everything is real: the sample line's PLC simulator in this process (asyncua on
loopback), one robot worker process per robot (JSON logs to files), and ``intern run``
processes on PostgreSQL and Redis. Scenarios:

* ``kill``: one orchestrator, killed while a station is mid-job and restarted after a
  random pause;
* ``kill-pg-down``: the same on a PostgreSQL server of its own, stopped after the first
  kill and started again before the last, so the orchestrator is restarted while it is
  down (its outbox, in a data folder kept across restarts, holds the results);
* ``failover``: two orchestrators with station leases (``INTERN_LEASES=1``); the active
  one is killed and restarted as the standby; takeover is timed from the kill to each
  station's first PLC write after it.

A run ends by letting every job open at the last restart reach the PLC and the record,
then stops every process and reads the logs, the PLC's latches and the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

from cell.demo.plcsim import line_simulator, with_endpoint
from cell.record.migrate import upgrade
from cell.services import EmbeddedPostgres, free_port
from tests.cell.harness import sample_line
from tests.cell.line.kill_analysis import KillReport, analyse, takeover_delays
from tests.cell.line.kill_loops import failover_loop, kill_loop, settle
from tests.cell.line.kill_rig import KillPlan, Proc, Rig, read_rows, worker_events

SCENARIOS = ("kill", "kill-pg-down", "failover")

__all__ = ["SCENARIOS", "KillPlan", "KillReport", "run_scenario"]


@contextlib.contextmanager
def private_postgres(folder: Path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL server of this run's own, migrated, to stop and start at will."""
    pg = EmbeddedPostgres(folder)
    upgrade(pg.start())
    try:
        yield pg
    finally:
        pg.stop()


async def run_scenario(plan: KillPlan, work: Path, redis_url: str, db_url: str) -> KillReport:
    """Run ``plan`` in folder ``work`` on Redis ``redis_url`` (a database the caller has
    emptied) and the migrated, empty database ``db_url`` (unused by ``kill-pg-down``,
    which starts a server of its own)."""
    if plan.scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {plan.scenario!r} ({', '.join(SCENARIOS)})")
    work.mkdir(parents=True, exist_ok=True)
    if plan.scenario == "kill-pg-down":
        with private_postgres(work / "pg") as pg:
            assert pg.url is not None
            return await _run(plan, work, redis_url, pg.url, pg)
    return await _run(plan, work, redis_url, db_url, None)


def _unattended(endpoint: str, data: dict) -> None:
    """The sample line on ``endpoint``, with no recipe holding for a technician (this line
    has none)."""
    for st in data["stations"]:
        st["plc_endpoint"] = endpoint
        for recipe in st["recipes"]:
            if recipe.get("on_nok") == "hold":
                recipe["on_nok"] = "continue"


def _orchestrators(
    plan: KillPlan, base: dict[str, str], db_url: str, work: Path, cfg: Path
) -> list[Proc]:
    """One ``intern run`` process, or two on station leases for failover."""
    out = []
    for i in range(2 if plan.scenario == "failover" else 1):
        env = dict(base, INTERN_DATABASE_URL=db_url, INTERN_DATA_DIR=str(work / f"orch-{i}"))
        if plan.scenario == "failover":
            env |= {"INTERN_LEASES": "1", "INTERN_LEASE_S": str(plan.lease_s)}
        out.append(Proc(f"orch-{i}", ["run", "--config", str(cfg)], env, work / "logs"))
    return out


async def _run(
    plan: KillPlan, work: Path, redis_url: str, db_url: str, pg: EmbeddedPostgres | None
) -> KillReport:
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/plc"
    line, cfg = sample_line(work, functools.partial(_unattended, endpoint))
    line = with_endpoint(line, endpoint)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    base = dict(os.environ, INTERN_REDIS_URL=redis_url, INTERN_LOG_FORMAT="json")
    wenv = dict(base, INTERN_TIME_SCALE=str(plan.scale), INTERN_POLICY="expert")
    workers = [
        Proc(f"worker-{r.id}", ["worker", "--robot", r.id, "--config", str(cfg)], wenv, logs)
        for r in line.robots
    ]
    orchestrators = _orchestrators(plan, base, db_url, work, cfg)
    writes: list[tuple[float, str]] = []
    async with line_simulator(line, speed=None, parts=None) as sim:
        sim.on_client_write(lambda sid, _tag, _value: writes.append((time.perf_counter(), sid)))
        rig = Rig(
            line,
            sim,
            workers,
            orchestrators,
            db_url,
            time.time() - time.perf_counter(),
            writes,
        )
        rng = random.Random(plan.seed)
        kill_times: list[float] = []
        try:
            for w in workers:
                w.start()
            if plan.scenario == "failover":
                await failover_loop(rig, plan, rng, kill_times)
            else:
                await kill_loop(rig, plan, rng, kill_times, pg)
            await settle(rig, plan)
        finally:
            # In threads: the simulator must keep answering while a stopping orchestrator
            # drains its jobs and a stopping worker finishes its own.
            await asyncio.gather(*(asyncio.to_thread(p.stop) for p in orchestrators))
            await asyncio.gather(*(asyncio.to_thread(w.stop) for w in workers))
        end = time.perf_counter()
        latches = rig.latches()
    takeovers = None
    if plan.scenario == "failover":
        takeovers = takeover_delays(kill_times, writes, rig.stations, end)
    return analyse(
        plan.scenario, len(kill_times), latches, read_rows(db_url), worker_events(rig), takeovers
    )
