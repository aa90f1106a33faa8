"""The kill loops of ``tests.cell.line.kills``: when to kill which orchestrator, when to
restart it, when PostgreSQL goes down and comes back, and how a run is let finish."""

from __future__ import annotations

import asyncio
import random
import time

from cell.services import EmbeddedPostgres
from tests.cell.line.kill_rig import KillPlan, Proc, Rig, recorded, until

# How long the machinery waits for a process to show it serves (start-up included).
SERVE_TIMEOUT_S = 60.0
# How long it waits for some station to be mid-job once the orchestrator serves.
MID_JOB_TIMEOUT_S = 30.0


async def _kill_mid_job(rig: Rig, plan: KillPlan, rng: random.Random, victim: Proc) -> float:
    """Let the line run a random while, then SIGKILL ``victim`` at the first moment a
    station is mid-job; returns the kill's perf_counter."""
    await asyncio.sleep(rng.uniform(*plan.run_before_kill_s))
    await until(rig.mid_job, MID_JOB_TIMEOUT_S, "a station mid-job")
    return victim.kill()


async def _serving(rig: Rig, proc: Proc) -> None:
    """Wait until the PLC is written to after ``proc`` started (the only orchestrator
    alive then: it serves)."""
    await until(
        lambda: rig.written_since(proc.started_at),
        SERVE_TIMEOUT_S,
        f"{proc.name} to write to the PLC after its start",
    )


async def kill_loop(
    rig: Rig,
    plan: KillPlan,
    rng: random.Random,
    kill_times: list[float],
    pg: EmbeddedPostgres | None,
) -> None:
    """One orchestrator, killed ``plan.kills`` times. With ``pg`` (a private server), each
    station first finishes a job with PostgreSQL up (so the outbox file knows its epoch),
    PostgreSQL stops after the first kill and starts again once the orchestrator restarted
    after the last kill but one serves: every restart in between happens with it down."""
    orch = rig.orchestrators[0]
    orch.start()
    await _serving(rig, orch)
    if pg is not None:
        await until(
            lambda: all(rig.sim.completed(sid) for sid in rig.stations),
            SERVE_TIMEOUT_S,
            "a job latched at every station before PostgreSQL stops",
        )
    back_after = max(0, plan.kills - 2)  # the restart after which PostgreSQL returns
    for i in range(plan.kills):
        kill_times.append(await _kill_mid_job(rig, plan, rng, orch))
        if pg is not None and i == 0:
            pg.stop()
        await asyncio.sleep(rng.uniform(*plan.restart_after_s))
        orch.start()
        await _serving(rig, orch)
        if pg is not None and i == back_after:
            # Back while this orchestrator serves: it replays its outbox, and the next
            # kill may land in that replay.
            await asyncio.to_thread(pg.start)


async def failover_loop(
    rig: Rig, plan: KillPlan, rng: random.Random, kill_times: list[float]
) -> None:
    """Two orchestrators on leases: the active one is killed ``plan.kills`` times and
    restarted as the standby once the other has written to every station."""
    first, second = rig.orchestrators
    first.start()
    await _serving(rig, first)
    second.start()
    await _up(second)
    for _ in range(plan.kills):
        victim = await asyncio.to_thread(rig.active)
        t_kill = await _kill_mid_job(rig, plan, rng, victim)
        kill_times.append(t_kill)
        await asyncio.sleep(rng.uniform(*plan.restart_after_s))
        victim.start()
        await until(
            lambda t=t_kill: rig.written_since(t, rig.stations),  # type: ignore[misc]
            SERVE_TIMEOUT_S,
            "every station written to after the kill (takeover)",
        )
        await _up(victim)


async def _up(proc: Proc) -> None:
    """Wait until ``proc`` has logged (it is past its imports and serving or standing by)."""
    log = proc.logs[-1]
    await until(
        lambda: log.exists() and log.stat().st_size > 0,
        SERVE_TIMEOUT_S,
        f"{proc.name} to log its start",
    )


async def settle(rig: Rig, plan: KillPlan) -> None:
    """Let every job open now reach the PLC, and every latched result the record."""
    open_seqs = {sid: rig.job_seq(sid) for sid in rig.stations}
    await until(
        lambda: rig.latched_through(open_seqs),
        plan.settle_timeout_s,
        f"the PLC to latch JobSeqs {open_seqs}",
    )
    latches = rig.latches()
    end = time.monotonic() + plan.settle_timeout_s
    while not await asyncio.to_thread(recorded, rig.db_url, latches):
        if time.monotonic() > end:
            return  # what is missing is reported as lost
        await asyncio.sleep(0.5)
