"""``intern demo``: a simulated line end to end on this machine.

PostgreSQL and Redis (embedded unless configured), the schema migrated, the PLC simulator
on a free loopback port, one Celery worker process per robot, the orchestrator in this
process; N parts per station, then a summary read back from the record, or a whole shift
and its report.

A run is written into the past (``cell.demo.placement``): its clock starts where the run
was placed, once every station is up, and is never ahead of the wall clock, so right after
the run every query's default window holds it and nothing on record is later than now.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.orm import Session

from cell.config import LineConfig
from cell.demo.people import Move, People, standard_moves
from cell.demo.placement import Placement, place_run, place_shift, record_shift, roster_from
from cell.demo.plcsim import line_simulator, with_endpoint
from cell.insight.report import ShiftReport, shift_report
from cell.insight.report_view import print_shift_report
from cell.insight.summary import StationSummary, station_summary
from cell.line.clock import Clock
from cell.line.orchestrator import RunOptions, run_line
from cell.record.engine import make_engine, make_sessionmaker
from cell.record.migrate import upgrade
from cell.record.roster import sync_line
from cell.services import ServiceError, Services, free_port
from cell.settings import Settings
from mes_bridge.plcsim import PlcSimulator
from robot.celery_app import make_celery

P = TypeVar("P")
T = TypeVar("T")


@dataclass
class WorkerProcs:
    """Robot worker subprocesses, stopped on exit."""

    procs: dict[str, subprocess.Popen[bytes]]
    log_dir: Path

    @classmethod
    def start(
        cls, robot_ids: list[str], config: Path, env: dict[str, str], log_dir: Path
    ) -> WorkerProcs:
        log_dir.mkdir(parents=True, exist_ok=True)
        procs = {}
        for rid in robot_ids:
            log = (log_dir / f"worker-{rid}.log").open("ab")
            procs[rid] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cell",
                    "worker",
                    "--robot",
                    rid,
                    "--config",
                    str(config),
                    "--loglevel",
                    "WARNING",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return cls(procs, log_dir)

    def wait_ready(self, redis_url: str, timeout_s: float = 90.0) -> None:
        """Block until every worker answers a ping, or raise naming the silent ones."""
        app = make_celery(redis_url)
        want = set(self.procs)
        deadline = time.monotonic() + timeout_s
        try:
            while want and time.monotonic() < deadline:
                for rid, proc in self.procs.items():
                    if proc.poll() is not None:
                        raise ServiceError(
                            f"worker for robot {rid} exited with {proc.returncode}; "
                            f"see {self.log_dir / f'worker-{rid}.log'}"
                        )
                replies = app.control.ping(timeout=1.0) or []
                seen = {name.split("@")[0].removeprefix("robot-") for r in replies for name in r}
                want -= seen
        finally:
            app.close()
        if want:
            raise ServiceError(
                f"robot workers not ready after {timeout_s:.0f} s: "
                f"{', '.join(sorted(want))}; see {self.log_dir}"
            )

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@contextlib.contextmanager
def simulated_line(
    settings: Settings,
    line: LineConfig,
    config_path: Path,
    speed: float,
    console: Console,
    place: Callable[[Session], P],
) -> Iterator[tuple[Services, LineConfig, P]]:
    """Servers up and migrated, the run placed in time (``place`` on the record, before
    any worker starts: a refusal costs nothing), the line on a free loopback port, robot
    workers ready."""
    data_dir = settings.data_dir.resolve()
    # The PLC simulator and the bridge talk plain OPC UA on loopback; asyncua warns
    # about that on every connect, which is noise in a demo.
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    with Services(data_dir, settings.database_url, settings.redis_url) as svc:
        assert svc.database_url and svc.redis_url
        where = ", ".join(svc.embedded) or "none"
        console.print(
            f"[bold]{line.line}[/]: {len(line.stations)} stations, "
            f"{len(line.robots)} robots; embedded servers: {where}"
        )
        upgrade(svc.database_url)
        placed = _on_record(svc.database_url, place)
        line = with_endpoint(line, f"opc.tcp://127.0.0.1:{free_port()}/intern-cells/plc")
        env = svc.env() | {"INTERN_TIME_SCALE": str(speed), "INTERN_POLICY": settings.policy}
        workers = WorkerProcs.start(
            [r.id for r in line.robots], config_path, env, data_dir / "logs"
        )
        try:
            workers.wait_ready(svc.redis_url)
            yield svc, line, placed
        finally:
            workers.stop()


def run_demo(
    settings: Settings,
    line: LineConfig,
    config_path: Path,
    *,
    parts: int,
    speed: float,
    console: Console,
) -> list[StationSummary]:
    """Run ``parts`` parts through every station of ``line``; print and return the summary.

    A simulated technician answers the alerts, so a station held after a NOK resumes.
    Raises ``Refused`` when it fits neither after nor before the line's record.
    """
    data_dir = settings.data_dir.resolve()

    def place(s: Session) -> Placement:
        return place_run(s, line, parts=parts, now=datetime.now(UTC))

    with simulated_line(settings, line, config_path, speed, console, place) as (
        svc,
        line,
        placed,
    ):
        assert svc.database_url and svc.redis_url
        _on_record(svc.database_url, lambda s: sync_line(s, line, at=roster_from(placed)))
        clock = Clock(speed, placed.origin, running=False, limit=placed.limit)
        console.print(
            f"line time from {placed.origin:%Y-%m-%d %H:%M} UTC (simulated, {speed:g}x), "
            f"to end before {placed.limit or datetime.now(UTC):%H:%M}"
        )
        opts = RunOptions(
            svc.database_url,
            svc.redis_url,
            data_dir=data_dir,
            job_timeout_s=settings.job_timeout_s,
            clock=clock,
        )
        total = parts * len(line.stations)
        asyncio.run(
            _drive(
                line,
                opts,
                parts,
                None,
                console,
                lambda sim: sum(len(sim.completed(st.id)) for st in line.stations) >= total,
                total,
            )
        )
        _note_overrun(console, clock, placed)
        summary = _on_record(
            svc.database_url, lambda s: station_summary(s, placed.origin, placed.limit)
        )
    _print_summary(console, summary, svc, data_dir)
    return summary


def _note_overrun(console: Console, clock: Clock, placed: Placement) -> None:
    """Say so when a run's clock reached the end it was placed for before the run did."""
    wall = datetime.now(UTC)
    if clock.now() >= min(placed.limit or wall, wall) - timedelta(seconds=1):
        console.print(
            "[yellow]note:[/] the run outlasted the line time it was placed for: its "
            "last records are squeezed at its end, so their durations read short"
        )


def run_shift(
    settings: Settings,
    line: LineConfig,
    config_path: Path,
    *,
    hours: int,
    speed: float,
    console: Console,
) -> ShiftReport:
    """A simulated shift of ``hours`` at the line's takt, with a technician answering
    alerts and a supervisor moving robots; prints and returns the shift report.

    The shift lies on whole UTC hours in the past, after or before the line's record
    (``cell.demo.placement.place_shift``); raises ``Refused`` when it fits neither."""
    data_dir = settings.data_dir.resolve()

    def place(s: Session) -> tuple[datetime, datetime, Placement]:
        return place_shift(s, line, hours=hours, speed=speed, now=datetime.now(UTC))

    def prepare(s: Session) -> None:
        record_shift(s, "sim", start, end)  # read back as "sim <start>"
        sync_line(s, line, at=roster_from(placed))

    with simulated_line(settings, line, config_path, speed, console, place) as (
        svc,
        line,
        (start, end, placed),
    ):
        assert svc.database_url and svc.redis_url
        _on_record(svc.database_url, prepare)
        clock = Clock(speed, start, running=False, limit=placed.limit)
        console.print(
            f"shift {start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC (simulated, {speed:g}x): "
            f"about {hours * 3600 / speed / 60:.1f} min"
        )
        opts = RunOptions(
            svc.database_url,
            svc.redis_url,
            data_dir=data_dir,
            job_timeout_s=settings.job_timeout_s,
            clock=clock,
        )
        asyncio.run(
            _drive(
                line,
                opts,
                None,
                standard_moves(hours),
                console,
                lambda sim: clock.now() >= end,
                int(hours * 3600),
            )
        )
        report = _on_record(svc.database_url, lambda s: shift_report(s, start, end))
    print_shift_report(console, report)
    return report


async def _drive(
    line: LineConfig,
    opts: RunOptions,
    parts: int | None,
    moves: tuple[Move, ...] | None,
    console: Console,
    finished: Callable[[PlcSimulator], bool],
    total: int,
) -> None:
    """Run the PLC simulator, the orchestrator and the simulated people until
    ``finished(sim)``; progress in parts, or in simulated seconds for a shift.

    The run's clock starts once every station is up, so the line's first events are at
    the clock's origin."""
    clock = opts.clock
    assert clock is not None
    stop, ready = asyncio.Event(), asyncio.Event()
    engine = make_engine(opts.database_url)
    people = People(make_sessionmaker(engine), clock, clock.origin, moves=moves or ())
    try:
        async with line_simulator(line, speed=clock.scale, parts=parts) as sim:
            runner = asyncio.create_task(run_line(line, opts, stop, ready=ready))
            up = asyncio.create_task(ready.wait())
            await asyncio.wait([runner, up], return_when=asyncio.FIRST_COMPLETED)
            up.cancel()
            if runner.done():
                await runner  # raises why the line did not start
                return
            clock.start()
            helpers = asyncio.create_task(people.run())
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as bar:
                what = "parts through the line" if parts else "simulated seconds of shift"
                task = bar.add_task(what, total=total)
                while not runner.done() and not finished(sim):
                    done = (
                        sum(len(sim.completed(st.id)) for st in line.stations)
                        if parts
                        else int((clock.now() - clock.origin).total_seconds())
                    )
                    bar.update(task, completed=min(done, total))
                    await asyncio.sleep(0.2)
                bar.update(task, completed=total)
            stop.set()
            helpers.cancel()
            await asyncio.gather(helpers, return_exceptions=True)
            await runner  # re-raises a failure of the orchestrator
    finally:
        engine.dispose()


def _on_record(database_url: str, work: Callable[[Session], T]) -> T:
    """``work`` on a session of its own."""
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as s:
            return work(s)
    finally:
        engine.dispose()


def _print_summary(
    console: Console, rows: list[StationSummary], svc: Services, data_dir: Path
) -> None:
    table = Table(title="Summary")
    table.add_column("station")
    # OK counts a job that passed at its second attempt; first-pass yield does not.
    for col in ("parts", "OK", "NOK", "retried", "first-pass yield", "cycle time median"):
        table.add_column(col, justify="right")
    # Version ids are 16 characters; a narrow terminal must not cut them.
    table.add_column("driven by", no_wrap=True, min_width=16)
    for r in rows:
        fpy = f"{100 * r.first_pass_yield:.1f} %" if r.first_pass_yield is not None else "-"
        ct = f"{r.cycle_time_median_ms / 1000:.1f} s" if r.cycle_time_median_ms else "-"
        drivers = ", ".join(r.drivers) or "-"
        table.add_row(
            r.station_id, str(r.jobs), str(r.ok), str(r.nok), str(r.retried), fpy, ct, drivers
        )
    jobs = sum(r.jobs for r in rows)
    ok = sum(r.ok for r in rows)
    retried = sum(r.retried for r in rows)
    table.add_row("all", str(jobs), str(ok), str(jobs - ok), str(retried), "", "", "", style="bold")
    console.print(table)
    if "postgres" in svc.embedded:
        console.print(
            f"record: embedded PostgreSQL, data in {data_dir / 'postgres'} "
            "(connect with: intern db shell)"
        )
    else:
        console.print(f"record: {svc.database_url}")
    console.print(f"worker logs: {data_dir / 'logs'}")
