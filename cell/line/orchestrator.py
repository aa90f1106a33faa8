"""The line orchestrator: every station of a line config in one asyncio process.

Stations that share a PLC endpoint share one OPC UA session; each station gets its own
loop task. ``run_line`` returns when ``stop`` is set (or raises what a station raised).

The line starts and is served with PostgreSQL unreachable: results go to the outbox,
recipes come from the line config (their record ids are filled in when the database
returns), epochs from what the outbox file remembers. Once the database answers, the
schema is brought to head, the line's stations, robots and recipes are synced and the
outbox is replayed; only then is anything written to the database.

With ``RunOptions.leases`` several processes, on one host or several, serve one line: each
serves only the stations whose lease it holds in PostgreSQL (``cell.line.leases``),
starts their PLC session and loops when it gains them and stops them, before the lease
can expire, when it loses them. Such a process needs the database to start serving, and
stops serving a station it cannot renew; without leases the line is served through a
database outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from cell.config import LineConfig
from cell.errors import Unavailable
from cell.line.clock import Clock
from cell.line.dispatch import Dispatcher
from cell.line.durability import Recorder, unreachable
from cell.line.endpoints import (
    HeldStations,
    LiveStations,
    Loops,
    drain,
    group_by_endpoint,
    start_stations,
)
from cell.line.leases import LeaseKeeper, owner_id
from cell.line.outbox import Outbox
from cell.line.station import CellContext
from cell.line.telemetry import Telemetry
from cell.record.engine import make_engine, make_sessionmaker
from cell.record.jobs import last_job_seqs
from cell.record.leases import lease_engine
from cell.record.migrate import schema_problem, upgrade
from cell.record.roster import sync_line
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
    # Bring the schema to head when the database answers; False: only check that it is
    # there (a plant migrates on purpose, with ``intern db upgrade``).
    migrate: bool = True
    # Serve only the stations whose lease this process holds (several processes share
    # a line); ``lease_s``: how long a lease lasts unless renewed.
    leases: bool = False
    lease_s: float = 5.0


__all__ = ["RunOptions", "group_by_endpoint", "home_robots", "run_line"]


async def run_line(
    line: LineConfig,
    opts: RunOptions,
    stop: asyncio.Event,
    *,
    ready: asyncio.Event | None = None,
    context_out: list[CellContext] | None = None,
) -> None:
    """Serve every station of ``line`` (with ``opts.leases``: those whose lease this
    process holds) until ``stop`` is set.

    ``ready`` is set once all PLC sessions are connected and every station loop runs
    (with leases: once the process takes part in serving the line, holding a lease or
    not); ``context_out`` (if given) receives the shared context, for counters in a demo.
    """
    engine = make_engine(opts.database_url, pool_size=max(5, len(line.stations) + 2))
    sessions = make_sessionmaker(engine)
    celery = make_celery(opts.redis_url)
    redis_client = aioredis.Redis.from_url(opts.redis_url, socket_timeout=5.0)
    outbox = Outbox(opts.data_dir / "outbox.sqlite3")
    recipe_ids: dict[tuple[str, int], int] = {}
    recorder = Recorder(sessions, outbox, recipe_ids=recipe_ids, online=False)
    owner = owner_id()
    try:
        record = _Record(opts.database_url, sessions, line, recorder, opts.migrate)
        known_seqs = await asyncio.to_thread(record.bring_up)  # results left over replayed
        if known_seqs is None:
            log.warning(
                "database unreachable: %s (%d results waiting in the outbox)",
                "waiting for it to take station leases"
                if opts.leases
                else "serving from the outbox",
                recorder.pending(),
            )
            known_seqs = recorder.known_job_seqs()
        ctx = CellContext(
            sessions=sessions,
            recorder=recorder,
            dispatcher=Dispatcher(celery, redis_client),
            recipe_ids=recipe_ids,
            job_timeout_s=opts.job_timeout_s,
            clock=opts.clock or Clock(),
            part_ids=line.part_id,
            home_robots=home_robots(line),
            telemetry=Telemetry(owner if opts.leases else None),
        )
        if context_out is not None:
            context_out.append(ctx)
        if opts.leases:
            await _serve_leased(line, opts, ctx, record, owner, stop, ready)
        else:
            await _serve_all(line, opts, ctx, record, known_seqs, stop, ready)
    finally:
        celery.close()
        await redis_client.aclose()
        outbox.close()
        engine.dispose()


async def _serve_all(
    line: LineConfig,
    opts: RunOptions,
    ctx: CellContext,
    record: _Record,
    known_seqs: dict[str, int],
    stop: asyncio.Event,
    ready: asyncio.Event | None,
) -> None:
    """Every station of the line, until ``stop`` (then drained)."""
    async with contextlib.AsyncExitStack() as stack:
        loops = await start_stations(stack, line, ctx, known_seqs)
        replay = asyncio.create_task(
            _replay_loop(record, opts.replay_every_s), name="outbox-replay"
        )
        live = [(loop.station.id, loop.live, loop.channel) for loop in loops.values()]
        report = asyncio.create_task(_report(ctx, opts, live), name="telemetry")
        if ready is not None:
            ready.set()
        try:
            await _serve_until(stop, ctx, loops, replay, opts.drain_s)
        finally:
            report.cancel()  # after the stations' last states: it sends them once more
            await asyncio.gather(report, return_exceptions=True)


async def _serve_leased(
    line: LineConfig,
    opts: RunOptions,
    ctx: CellContext,
    record: _Record,
    owner: str,
    stop: asyncio.Event,
    ready: asyncio.Event | None,
) -> None:
    """The stations whose lease ``owner`` holds, as leases come and go, until ``stop``;
    then drained, their PLC sessions closed and only then the leases released. Cancelled
    (as good as a crash to the other processes), it releases nothing: its leases run out."""
    lease_db = lease_engine(opts.database_url, opts.lease_s)
    keeper = LeaseKeeper(
        make_sessionmaker(lease_db), owner, [st.id for st in line.stations], opts.lease_s
    )
    held = HeldStations(line, ctx, record.known_job_seqs)
    log.info("serving the stations whose lease %s holds (%.1f s leases)", owner, opts.lease_s)
    tasks = [
        asyncio.create_task(_keep_leases(record, keeper, opts), name="station-leases"),
        asyncio.create_task(held.follow(keeper), name="lease-follow"),
        asyncio.create_task(_replay_loop(record, opts.replay_every_s), name="outbox-replay"),
    ]
    report = asyncio.create_task(_report(ctx, opts, held.live), name="telemetry")
    if ready is not None:
        ready.set()
    try:
        failure = await _first_failure(stop, tasks)
        if failure is None:
            keeper.stop_taking()
            held.draining = True  # a lease lost while draining stops its stations at once
            await drain(ctx, held.loops(), opts.drain_s, served=held.serves)
        await held.stop()  # no PLC write for these stations from here on
        await _cancel(tasks)
        await keeper.release()
        if failure is not None:
            raise failure
    finally:
        await _cancel(tasks)
        await held.stop()
        await _cancel([report])  # after the stations' last states: it sends them once more
        lease_db.dispose()


async def _keep_leases(record: _Record, keeper: LeaseKeeper, opts: RunOptions) -> None:
    """Take and keep leases once the record is up (its schema checked, or brought to
    head): before that, nothing is known to be there to take them from."""
    while not record.recorder.online:
        await asyncio.sleep(opts.replay_every_s)  # the replay loop brings the record up
    await keeper.run()


async def _first_failure(
    stop: asyncio.Event, tasks: list[asyncio.Task[None]]
) -> BaseException | None:
    """Wait for ``stop`` (None) or for one of ``tasks`` to end (what it raised)."""
    stopper = asyncio.create_task(stop.wait(), name="stop")
    try:
        done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        await _cancel([stopper])
    for task in done:
        if task is not stopper:
            ended = None if task.cancelled() else task.exception()
            return ended or RuntimeError(f"{task.get_name()} ended")
    return None


async def _cancel(tasks: Sequence[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _report(ctx: CellContext, opts: RunOptions, stations: LiveStations) -> None:
    """Send the stations' live view and the outbox backlog to the metrics until cancelled
    (``stations``: those served, read at each report)."""
    await ctx.telemetry.report(
        opts.redis_url, stations, ctx.clock.now, ctx.clock.scale, ctx.recorder.pending
    )


async def _serve_until(
    stop: asyncio.Event,
    ctx: CellContext,
    loops: Loops,
    replay: asyncio.Task[None],
    drain_s: float,
) -> None:
    """Wait for ``stop`` (then drain running jobs) or for a task to fail (then raise it)."""
    tasks = [*loops, replay]
    stopper = asyncio.create_task(stop.wait(), name="stop")
    done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    failed = [t.exception() for t in done if t is not stopper and t.exception() is not None]
    if not failed:
        await drain(ctx, loops, drain_s)
    for t in [stopper, *tasks]:
        t.cancel()
    await asyncio.gather(stopper, *tasks, return_exceptions=True)
    if failed and failed[0] is not None:
        raise failed[0]


async def _replay_loop(record: _Record, every_s: float) -> None:
    """Bring the record up while the database has not answered since start; then drain
    the outbox whenever it holds results and the database answers."""
    while True:
        await asyncio.sleep(every_s)
        if not record.recorder.online:
            await asyncio.to_thread(record.bring_up)
        elif record.recorder.pending():
            await asyncio.to_thread(record.recorder.replay)


def home_robots(line: LineConfig) -> dict[str, str]:
    """Station -> the robot whose home it is (the first one, if several)."""
    homes: dict[str, str] = {}
    for rb in line.robots:
        if rb.home_station is not None:
            homes.setdefault(rb.home_station, rb.id)
    return homes


@dataclass
class _Record:
    """The production record as the orchestrator readies it, at start or on its return."""

    url: str
    sessions: sessionmaker[Session]
    line: LineConfig
    recorder: Recorder
    migrate: bool
    tried: bool = False

    def bring_up(self) -> dict[str, int] | None:
        """Schema to head, the line synced (recipe ids into the recorder's map), the
        recorder online and the outbox replayed; each station's last recorded JobSeq.
        None while the database is unreachable; any other error is raised, and
        ``Unavailable`` for a schema not at head that is not ours to migrate."""
        back, self.tried = self.tried, True
        try:
            problem = None if self.migrate else schema_problem(self.url)
            if problem is not None:
                raise Unavailable(f"{problem}: run `intern db upgrade`")
            if self.migrate:
                upgrade(self.url)
            with self.sessions() as s:
                self.recorder.recipe_ids.update(sync_line(s, self.line))
        except DBAPIError as exc:
            if not unreachable(exc):
                raise
            return None
        self.recorder.go_online()
        replayed = self.recorder.replay()
        log.info(
            "database %s: schema at head, %d results replayed",
            "back" if back else "ready",
            replayed,
        )
        return self.known_job_seqs()  # after the replay, so that the replayed jobs count

    def known_job_seqs(self) -> dict[str, int]:
        """Each station's last JobSeq: the record's while it answers and nothing waits
        in the outbox (another process may have served the station since this one
        last did), else what this process remembers."""
        if self.recorder.online and not self.recorder.pending():
            try:
                with self.sessions() as s:
                    return last_job_seqs(s)
            except DBAPIError as exc:
                if not unreachable(exc):
                    raise
        return self.recorder.known_job_seqs()
