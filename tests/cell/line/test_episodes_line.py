"""Every job's episode on record, end to end: the PLC simulator, the orchestrator, real
Celery worker processes keeping episodes in a shared store, and PostgreSQL. Each job the
PLC completed has one episode row (its last attempt's), and its folder in the store is
that job's."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from cell.config import LineConfig, load_line_config, sample_config_path
from cell.demo.plcsim import line_simulator, with_endpoint
from cell.demo.runner import WorkerProcs
from cell.line.clock import Clock
from cell.line.orchestrator import RunOptions, run_line
from cell.record.episodes import EpisodeFilter, find_episodes
from cell.services import free_port
from robot.episode_files import load_episode

pytestmark = pytest.mark.slow


@pytest.fixture
def line() -> LineConfig:
    return with_endpoint(
        load_line_config(sample_config_path()),
        f"opc.tcp://127.0.0.1:{free_port()}/intern-cells/plc",
    )


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "episodes"


@pytest.fixture
def workers(line: LineConfig, redis_url: str, tmp_path: Path, store: Path) -> Iterator[None]:
    env = dict(
        os.environ,
        INTERN_REDIS_URL=redis_url,
        INTERN_POLICY="expert",
        INTERN_EPISODE_DIR=str(store),
    )
    procs = WorkerProcs.start(
        [r.id for r in line.robots], sample_config_path(), env, tmp_path / "logs"
    )
    try:
        procs.wait_ready(redis_url, timeout_s=120)
        yield
    finally:
        procs.stop()


async def _run(line: LineConfig, opts: RunOptions, parts: int) -> None:
    stop = asyncio.Event()
    async with line_simulator(line, speed=None, parts=parts) as sim:
        runner = asyncio.create_task(run_line(line, opts, stop))
        waiter = asyncio.create_task(sim.wait_completed(parts, timeout=240))
        await asyncio.wait([runner, waiter], return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        await runner
        await waiter


def test_each_job_of_the_line_has_its_episode_on_record(
    line: LineConfig,
    workers: None,
    store: Path,
    make_database: Callable[[], str],
    redis_url: str,
    tmp_path: Path,
) -> None:
    db = make_database()
    opts = RunOptions(db, redis_url, data_dir=tmp_path, job_timeout_s=120, clock=Clock(5000.0))
    parts = 3
    asyncio.run(_run(line, opts, parts))
    engine = create_engine(db)
    with Session(engine) as s:
        rows = find_episodes(s, EpisodeFilter())
    engine.dispose()
    robot_jobs = [r for r in rows if r.frames > 0]
    assert len(rows) >= parts * len(line.stations) and robot_jobs == rows
    assert len({(r.job_key, r.attempt) for r in rows}) == len(rows)  # a retry keeps both
    for r in rows:
        folder = store / r.path
        assert r.bytes == sum(p.stat().st_size for p in folder.iterdir())
        ep = load_episode(folder / "episode.json")
        # A second attempt (a recipe's retry_once) runs under its own key, ``...:2``.
        robot_key = r.job_key if r.attempt == 1 else f"{r.job_key}:{r.attempt}"
        assert ep.manifest["job"]["job_key"] == robot_key and ep.length == r.frames
        assert ep.outcome.success is r.ok and ep.manifest["policy_version"] == r.policy_version
