"""The line orchestrator: every station of a line config in one asyncio process.

Stations that share a PLC endpoint share one OPC UA session; each station gets its own
loop task. ``run_line`` returns when ``stop`` is set (or raises what a station raised).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis
from sqlalchemy.orm import Session, sessionmaker

from cell.config import LineConfig, Station
from cell.line.clock import Clock
from cell.line.dispatch import Dispatcher
from cell.line.durability import Recorder
from cell.line.outbox import Outbox
from cell.line.station import CellContext, StationLoop
from cell.packml import PackML
from cell.record.engine import make_engine, make_sessionmaker
from cell.record.jobs import last_job_seqs
from cell.record.roster import sync_line
from mes_bridge.session import PlcSession
from robot.celery_app import make_celery

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    database_url: str
    redis_url: str
    data_dir: Path
    job_timeout_s: float = 300.0
    replay_every_s: float = 2.0
    drain_s: float = 60.0  # on stop, how long running jobs may take to finish
    clock: Clock | None = None  # None: the wall clock


def group_by_endpoint(line: LineConfig) -> dict[str, list[Station]]:
    groups: dict[str, list[Station]] = defaultdict(list)
    for st in line.stations:
        groups[st.plc_endpoint].append(st)
    return dict(groups)


async def run_line(
    line: LineConfig,
    opts: RunOptions,
    stop: asyncio.Event,
    *,
    ready: asyncio.Event | None = None,
    context_out: list[CellContext] | None = None,
) -> None:
    """Serve every station of ``line`` until ``stop`` is set.

    ``ready`` is set once all PLC sessions are connected and every station loop runs;
    ``context_out`` (if given) receives the shared context, for counters in a demo.
    """
    engine = make_engine(opts.database_url, pool_size=max(5, len(line.stations) + 2))
    sessions = make_sessionmaker(engine)
    celery = make_celery(opts.redis_url)
    redis_client = aioredis.Redis.from_url(opts.redis_url, socket_timeout=5.0)
    outbox = Outbox(opts.data_dir / "outbox.sqlite3")
    recorder = Recorder(sessions, outbox)
    try:
        recipe_ids, known_seqs = await asyncio.to_thread(_sync, sessions, line)
        await asyncio.to_thread(recorder.replay)  # results left from a previous run first
        dispatcher = Dispatcher(celery, redis_client)
        ctx = CellContext(
            sessions=sessions,
            recorder=recorder,
            dispatcher=dispatcher,
            recipe_ids=recipe_ids,
            job_timeout_s=opts.job_timeout_s,
            clock=opts.clock or Clock(),
            part_ids=line.part_id,
        )
        if context_out is not None:
            context_out.append(ctx)
        async with contextlib.AsyncExitStack() as stack:
            loops = await _start_stations(stack, line, ctx, known_seqs)
            replay = asyncio.create_task(
                _replay_loop(recorder, opts.replay_every_s), name="outbox-replay"
            )
            report = asyncio.create_task(_report(ctx, opts, loops), name="telemetry")
            if ready is not None:
                ready.set()
            try:
                await _serve_until(stop, ctx, loops, replay, opts.drain_s)
            finally:
                report.cancel()  # after the stations' last states: it sends them once more
                await asyncio.gather(report, return_exceptions=True)
    finally:
        celery.close()
        await redis_client.aclose()
        outbox.close()
        engine.dispose()


async def _report(
    ctx: CellContext, opts: RunOptions, loops: dict[asyncio.Task[None], StationLoop]
) -> None:
    """Send the stations' live view and the outbox backlog to the metrics until cancelled."""
    stations = [(loop.station.id, loop.live, loop.channel) for loop in loops.values()]
    await ctx.telemetry.report(
        opts.redis_url, stations, ctx.clock.now, ctx.clock.scale, ctx.recorder.pending
    )


async def _start_stations(
    stack: contextlib.AsyncExitStack,
    line: LineConfig,
    ctx: CellContext,
    known_seqs: dict[str, int],
) -> dict[asyncio.Task[None], StationLoop]:
    """One PLC session per endpoint (closed by ``stack``) and one loop task per station."""
    loops: dict[asyncio.Task[None], StationLoop] = {}
    for endpoint, stations in group_by_endpoint(line).items():
        # The last recorded JobSeq lets the bridge see a counter reset that happened
        # while the cell was down.
        plc = await stack.enter_async_context(
            PlcSession(
                endpoint,
                {st.id: st.tags for st in stations},
                known_job_seqs={st.id: known_seqs[st.id] for st in stations if st.id in known_seqs},
                security=stations[0].security,
            )
        )
        for st in stations:
            loop = StationLoop(st, plc.station(st.id), ctx)
            loops[asyncio.create_task(loop.run(), name=f"station-{st.id}")] = loop
    return loops


async def _serve_until(
    stop: asyncio.Event,
    ctx: CellContext,
    loops: dict[asyncio.Task[None], StationLoop],
    replay: asyncio.Task[None],
    drain_s: float,
) -> None:
    """Wait for ``stop`` (then drain running jobs) or for a task to fail (then raise it)."""
    tasks = [*loops, replay]
    stopper = asyncio.create_task(stop.wait(), name="stop")
    done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    failed = [t.exception() for t in done if t is not stopper and t.exception() is not None]
    if not failed:
        await _drain(ctx, loops, drain_s)
    for t in [stopper, *tasks]:
        t.cancel()
    await asyncio.gather(stopper, *tasks, return_exceptions=True)
    if failed and failed[0] is not None:
        raise failed[0]


async def _drain(
    ctx: CellContext, loops: dict[asyncio.Task[None], StationLoop], grace_s: float
) -> None:
    """Let running jobs finish (up to ``grace_s``) and stop every station cleanly."""
    ctx.draining = True
    for task, loop in loops.items():
        if not loop.busy or loop.state is PackML.HELD:
            task.cancel()  # waiting for a job, a robot or a technician: nothing to finish
    await asyncio.wait(loops, timeout=grace_s)
    for task, loop in loops.items():
        if task.cancelled() or not task.done():
            task.cancel()
            with contextlib.suppress(Exception):
                await loop.set_state(PackML.STOPPED, "orchestrator stopped")


async def _replay_loop(recorder: Recorder, every_s: float) -> None:
    """Drain the outbox whenever it holds results and the database answers."""
    while True:
        await asyncio.sleep(every_s)
        if recorder.pending():
            await asyncio.to_thread(recorder.replay)


def _sync(
    sessions: sessionmaker[Session], line: LineConfig
) -> tuple[dict[tuple[str, int], int], dict[str, int]]:
    with sessions() as s:
        return sync_line(s, line), last_job_seqs(s)
