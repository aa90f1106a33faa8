"""A running line for behaviour tests: PLC simulator, orchestrator, robot worker processes.

Everything is real: the asyncua server and client on loopback, Celery workers in their own
processes on Redis, PostgreSQL. Time runs ``scale`` times faster than the wall clock in
the cell and in the workers, so a 60 s job lasts 60/scale s and can be interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from cell.config import LineConfig, parse_line_config, sample_config_path
from cell.demo.plcsim import line_simulator, with_endpoint
from cell.line.clock import Clock
from cell.line.orchestrator import RunOptions, run_line
from cell.line.station import CellContext
from cell.record import models as m
from cell.services import free_port
from mes_bridge.plcsim import PlcSimulator
from mes_bridge.tags import Tag


def sample_line(
    folder: Path,
    edit: Callable[[dict], None] | None = None,
    stations: tuple[str, ...] | None = None,
) -> tuple[LineConfig, Path]:
    """The sample line (optionally edited, optionally only some stations) on a free port,
    and a config file of it for worker processes."""
    data = yaml.safe_load(sample_config_path().read_text())
    if stations is not None:
        data["stations"] = [s for s in data["stations"] if s["id"] in stations]
        for r in data["robots"]:
            if r.get("home_station") not in stations:
                r["home_station"] = None
    if edit is not None:
        edit(data)
    line = with_endpoint(parse_line_config(data), f"opc.tcp://127.0.0.1:{free_port()}/plc")
    path = folder / "line.yaml"
    path.write_text(yaml.safe_dump(data))
    return line, path


class Workers:
    """Robot worker processes, each restartable and killable."""

    def __init__(
        self, config: Path, redis_url: str, scale: float, log_dir: Path, policy: str = "expert"
    ) -> None:
        self.config, self.redis_url, self.scale, self.log_dir = config, redis_url, scale, log_dir
        self.policy = policy
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, robot_id: str) -> None:
        env = dict(
            os.environ,
            INTERN_REDIS_URL=self.redis_url,
            INTERN_TIME_SCALE=str(self.scale),
            INTERN_POLICY=self.policy,
        )
        log = (self.log_dir / f"worker-{robot_id}.log").open("ab")
        self.procs[robot_id] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cell",
                "worker",
                "--robot",
                robot_id,
                "--config",
                str(self.config),
                "--loglevel",
                "INFO",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill(self, robot_id: str) -> None:
        proc = self.procs.pop(robot_id)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()


@dataclass
class Running:
    line: LineConfig
    sim: PlcSimulator
    ctx: CellContext
    db_url: str

    def rows(self) -> list[m.Job]:
        engine = create_engine(self.db_url)
        try:
            with Session(engine) as s:
                return list(
                    s.scalars(select(m.Job).order_by(m.Job.station_id, m.Job.epoch, m.Job.job_seq))
                )
        finally:
            engine.dispose()

    def session(self) -> Session:
        return self.ctx.sessions()

    async def until(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until ``cond()`` holds, polling; fail with ``what`` after ``timeout``."""
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            await asyncio.sleep(0.1)

    def plc(self, station_id: str, tag: Tag) -> object:
        return self.sim.value(station_id, tag)


@contextlib.asynccontextmanager
async def running_line(
    line: LineConfig,
    db_url: str,
    redis_url: str,
    data_dir: Path,
    *,
    scale: float,
    parts: int | None,
    prepare: Callable[[PlcSimulator], None] | None = None,
) -> AsyncIterator[Running]:
    """Run ``line`` against its simulated PLC until the block exits.

    ``prepare`` gets the simulator before it starts (e.g. to inject the first parts).
    """
    stop = asyncio.Event()
    ready = asyncio.Event()
    ctx_out: list[CellContext] = []
    opts = RunOptions(
        db_url,
        redis_url,
        data_dir=data_dir,
        job_timeout_s=120,
        replay_every_s=0.5,
        clock=Clock(scale),
        drain_s=30.0,
    )
    simulator = line_simulator(line, speed=None, parts=parts)
    if prepare is not None:
        prepare(simulator)
    async with simulator as sim:
        runner = asyncio.create_task(run_line(line, opts, stop, ready=ready, context_out=ctx_out))
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait([runner, waiter], timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if runner.done():
            runner.result()  # raises why it did not start
        ctx_out[0].poll_s = 0.1
        try:
            yield Running(line, sim, ctx_out[0], db_url)
        finally:
            stop.set()
            await asyncio.wait_for(runner, 60)
