"""Starting with PostgreSQL down: the orchestrator starts, serves the PLC's jobs to the
robot workers into the outbox from what its outbox file remembers, and when PostgreSQL
starts every result lands once; a station with nothing known waits for the record."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from cell.line.durability import Recorder, RecordUnavailable
from cell.line.outbox import Outbox
from cell.record import models as m
from cell.record.engine import make_engine, make_sessionmaker
from cell.record.jobs import JobRecord
from cell.record.migrate import upgrade
from cell.services import EmbeddedPostgres, free_port
from tests.cell.harness import Workers, running_line, sample_line

SCALE = 40.0


def _rec(seq: int, part: str) -> JobRecord:
    now = datetime.now(UTC)
    return JobRecord(
        station_id="ST10",
        epoch=3,
        job_seq=seq,
        part_id=part,
        program_no=1,
        task="nut_install",
        started_at=now,
        ended_at=now,
        cycle_time_ms=70000,
        ok=True,
    )


def test_a_restarted_recorder_places_jobs_from_its_outbox_file_without_the_database(
    tmp_path: Path,
) -> None:
    # Nothing listens on this port: PostgreSQL is really unreachable.
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    sessions = make_sessionmaker(engine)
    first = Recorder(sessions, Outbox(tmp_path / "outbox.sqlite3"), online=False)
    with pytest.raises(RecordUnavailable, match="ST10: database unreachable"):
        first.decide("ST10", 8, "P-8")
    assert first.record(_rec(7, "P-7"), None) == "outbox"
    first.outbox.close()

    again = Recorder(sessions, Outbox(tmp_path / "outbox.sqlite3"), online=False)
    assert again.known_job_seqs() == {"ST10": 7}
    nxt = again.decide("ST10", 8, "P-8")
    assert (nxt.epoch, nxt.known) == (3, None)
    repeat = again.decide("ST10", 7, "P-7")
    assert repeat.epoch == 3 and repeat.known is not None and repeat.known.ok
    assert again.decide("ST10", 1, "P-1").epoch == 4  # the counter went back: a new epoch
    assert again.replay() == 0 and again.pending() == 1  # nothing written before it is online
    again.outbox.close()
    engine.dispose()


@pytest.mark.slow
async def test_the_line_starts_and_runs_with_postgresql_down(
    tmp_path: Path, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg")  # a server of our own, to stop and start
    url = pg.start()
    upgrade(url)
    data = tmp_path / "cell"  # one orchestrator's data folder, outbox file included
    workers: Workers | None = None
    try:
        # A first run with the database up leaves ST20's last job in the outbox file.
        line, cfg = sample_line(tmp_path, stations=("ST20",))
        workers = Workers(cfg, redis_url, SCALE, tmp_path / "logs")
        workers.start("R2")
        async with running_line(line, url, redis_url, data, scale=SCALE, parts=None) as run:
            await run.until(lambda: len(run.sim.completed("ST20")) >= 2, 120, "2 parts")
        first = list(run.sim.completed("ST20"))
        workers.stop_all()

        pg.stop()
        line, cfg = sample_line(tmp_path, stations=("ST20", "ST30"))
        workers = Workers(cfg, redis_url, SCALE, tmp_path / "logs")
        workers.start("R2")
        workers.start("R3")
        with caplog.at_level(logging.INFO, logger="cell.line.orchestrator"):
            async with running_line(line, url, redis_url, data, scale=SCALE, parts=None) as run:
                await run.until(lambda: len(run.sim.completed("ST20")) >= 3, 120, "3 parts")
                assert run.ctx.recorder.pending() >= 3
                # ST30 has no history anywhere: its job waits, unacknowledged.
                assert run.sim.completed("ST30") == []
                await asyncio.sleep(1.0)
                assert run.sim.completed("ST30") == []
                assert pg.start() == url
                await run.until(lambda: run.ctx.recorder.pending() == 0, 120, "outbox replayed")
                await run.until(lambda: len(run.sim.completed("ST30")) >= 2, 120, "ST30 serves")
            second = {s: list(run.sim.completed(s)) for s in ("ST20", "ST30")}
        messages = [r.getMessage() for r in caplog.records]
        assert any(
            msg.startswith("database unreachable: serving from the outbox") for msg in messages
        )
        assert any(msg.startswith("database back: schema at head") for msg in messages)
    finally:
        if workers is not None:
            workers.stop_all()

    engine = create_engine(url)
    try:
        with Session(engine) as s:
            rows = s.scalars(select(m.Job)).all()
            keys = [(r.station_id, r.epoch, r.job_seq) for r in rows]
            assert len(keys) == len(set(keys)), "a job recorded twice"
            by_part = {(r.station_id, r.part_id): r for r in rows}
            latched = [("ST20", res) for res in [*first, *second["ST20"]]]
            latched += [("ST30", res) for res in second["ST30"]]
            # Every result the PLC latched, in either run, is on record with what it latched.
            for sid, res in latched:
                row = by_part[(sid, res.part_id)]
                assert (1 if row.ok else 2, row.cycle_time_ms) == (res.result, res.cycle_time_ms)
            # The second run's PLC restarted its counter: its jobs opened a new epoch.
            assert {r.epoch for r in rows if r.station_id == "ST20"} == {0, 1}
            # Results recorded offline got their recipe row once the line was synced.
            assert all(r.recipe_id is not None for r in rows if r.task is not None)
    finally:
        engine.dispose()
        pg.stop()
