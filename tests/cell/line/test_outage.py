"""PostgreSQL stopped for 30 s in the middle of a run: results go to the outbox, the PLC
keeps getting answers, and when the database returns every job the PLC completed is on
record exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from cell.record import models as m
from cell.record.migrate import upgrade
from cell.services import EmbeddedPostgres
from tests.cell.harness import Workers, running_line, sample_line

pytestmark = pytest.mark.slow
SCALE = 40.0


async def test_database_down_for_30_s_loses_and_doubles_nothing(
    tmp_path: Path,
    redis_url: str,
) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg")  # a server of our own, to stop and start
    url = pg.start()
    upgrade(url)
    line, cfg = sample_line(tmp_path, stations=("ST20", "ST30"))
    workers = Workers(cfg, redis_url, SCALE, tmp_path / "logs")
    workers.start("R2")
    workers.start("R3")
    try:
        async with running_line(line, url, redis_url, tmp_path, scale=SCALE, parts=None) as run:
            await run.until(
                lambda: all(len(run.sim.completed(s)) >= 3 for s in ("ST20", "ST30")),
                120,
                "3 parts each",
            )
            pg.stop()
            before = sum(len(run.sim.completed(s)) for s in ("ST20", "ST30"))
            await asyncio.sleep(30)
            during = sum(len(run.sim.completed(s)) for s in ("ST20", "ST30"))
            assert during > before, "the line kept running on the outbox"
            assert run.ctx.recorder.pending() > 0
            assert run.ctx.counters.get("recorded_outbox", 0) > 0
            url_again = pg.start()
            assert url_again == url
            await run.until(lambda: run.ctx.recorder.pending() == 0, 120, "outbox replayed")
        # Leaving the block drains the line: running jobs finish, so what the PLC latched
        # is final now.
        completed = {s: list(run.sim.completed(s)) for s in ("ST20", "ST30")}
        engine = create_engine(url)
        with Session(engine) as s:
            for sid in ("ST20", "ST30"):
                rows = s.scalars(select(m.Job).where(m.Job.station_id == sid)).all()
                keys = [(r.epoch, r.job_seq) for r in rows]
                assert len(keys) == len(set(keys)), f"{sid}: a job recorded twice"
                latched = {r.job_seq: r for r in completed[sid]}
                recorded = {r.job_seq: r for r in rows}
                # Every job the PLC latched is on record, with the result it latched.
                assert set(latched) <= set(recorded), f"{sid}: latched but not recorded"
                for seq, res in latched.items():
                    assert (1 if recorded[seq].ok else 2) == res.result
                    assert recorded[seq].cycle_time_ms == res.cycle_time_ms
                assert max(recorded) >= max(latched)
            assert s.scalar(select(func.count()).select_from(m.Job)) > 6
        engine.dispose()
    finally:
        workers.stop_all()
        pg.stop()
