"""One line end to end on real parts: the PLC simulator (asyncua server on loopback), the
bridge and orchestrator, one real Celery worker process per robot on real Redis, and a
real PostgreSQL database."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cell.cli import register
from cell.config import LineConfig, load_line_config, sample_config_path
from cell.demo.plcsim import line_simulator, with_endpoint
from cell.demo.runner import WorkerProcs
from cell.line.clock import Clock
from cell.line.orchestrator import RunOptions, run_line
from cell.record import models as m
from cell.record.jobs import JobRecord, record_job
from cell.services import free_port
from mes_bridge.plcsim import PlcSimulator
from robot.jobs import ErrorCode

pytestmark = pytest.mark.slow

# Simulated robots report ~60 s cycles; the cell waits them out on this clock.
FAST = Clock(scale=5000.0)


@pytest.fixture
def line() -> LineConfig:
    return with_endpoint(
        load_line_config(sample_config_path()),
        f"opc.tcp://127.0.0.1:{free_port()}/intern-cells/plc",
    )


@pytest.fixture
def workers(line: LineConfig, redis_url: str, tmp_path: Path) -> Iterator[WorkerProcs]:
    # The scripted expert: these tests count jobs and rows, and ST10's recipe holds on a NOK
    # until a technician clears it, which nobody does here. The shipped policy in a worker
    # is shown in tests/robot/test_worker.py.
    env = dict(os.environ, INTERN_REDIS_URL=redis_url, INTERN_POLICY="expert")
    procs = WorkerProcs.start(
        [r.id for r in line.robots], sample_config_path(), env, tmp_path / "logs"
    )
    try:
        procs.wait_ready(redis_url, timeout_s=120)
        yield procs
    finally:
        procs.stop()


async def _run(
    line: LineConfig,
    opts: RunOptions,
    parts: int,
    before: Callable[[PlcSimulator], None] | None = None,
) -> PlcSimulator:
    stop = asyncio.Event()
    async with line_simulator(line, speed=None, parts=parts) as sim:
        if before is not None:
            before(sim)
        runner = asyncio.create_task(run_line(line, opts, stop))
        waiter = asyncio.create_task(sim.wait_completed(parts, timeout=240))
        await asyncio.wait([runner, waiter], return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        await runner
        await waiter  # raises TimeoutError naming what is missing
    return sim


def _rows(url: str) -> list[m.Job]:
    engine = create_engine(url)
    try:
        with Session(engine) as s:
            return list(s.scalars(select(m.Job).order_by(m.Job.station_id, m.Job.job_seq)))
    finally:
        engine.dispose()


def test_twenty_parts_through_the_line_match_the_record(
    line: LineConfig,
    workers: WorkerProcs,
    make_database: Callable[[], str],
    redis_url: str,
    tmp_path: Path,
) -> None:
    db = make_database()
    opts = RunOptions(db, redis_url, data_dir=tmp_path, job_timeout_s=120, clock=FAST)
    parts = 20
    sim = asyncio.run(_run(line, opts, parts))

    rows = _rows(db)
    by_key = {(r.station_id, r.job_seq): r for r in rows}
    latched_total = 0
    for st in line.stations:
        latched = sim.completed(st.id)[:parts]
        latched_total += len(latched)
        for res in latched:
            row = by_key[(st.id, res.job_seq)]
            assert row.part_id == res.part_id
            assert (1 if row.ok else 2) == res.result
            assert row.error_code == res.error_code
            assert row.cycle_time_ms == res.cycle_time_ms
    # Every job the PLC completed has exactly one row, and there are no others.
    assert len(rows) == latched_total == parts * len(line.stations)
    assert len(by_key) == len(rows)
    fastened = [r for r in rows if r.task != "material_handling"]
    engine = create_engine(db)
    with Session(engine) as s:
        n_fasteners = s.scalar(select(func.count()).select_from(m.FastenerResult))
        assert n_fasteners == sum(
            len(st.recipe(1).fasteners) * parts for st in line.stations if st.recipe(1).fasteners
        )
        assert all(r.robot_id for r in fastened)
        # Recording a completed job again leaves one row.
        first = rows[0]
        again = record_job(
            s,
            JobRecord(
                station_id=first.station_id,
                epoch=first.epoch,
                job_seq=first.job_seq,
                part_id=first.part_id,
                program_no=first.program_no,
                started_at=first.started_at,
                ended_at=first.ended_at,
                cycle_time_ms=1,
                ok=not first.ok,
            ),
        )
        assert not again.created
        assert s.scalar(select(func.count()).select_from(m.Job)) == len(rows)
    engine.dispose()


GS1 = "\x1d01095011010209171719050810ABCD1234\x1d2110"  # GS1 element strings, GS-separated
NON_ASCII = "Gußteil-Nr. Ä-4711 鋳造"


def test_bad_plc_input_ends_that_job_nok_with_an_alert_and_the_line_goes_on(
    line: LineConfig,
    workers: WorkerProcs,
    make_database: Callable[[], str],
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = make_database()
    opts = RunOptions(db, redis_url, data_dir=tmp_path, job_timeout_s=120, clock=FAST)

    def inject(sim: PlcSimulator) -> None:
        # Part ids injected at ST10 name the part through the line.
        sim.inject("ST10", part_id="")  # first part: empty PartId
        sim.inject("ST10", program_no=77)  # second: a ProgramNo with no recipe
        sim.inject("ST10", part_id=GS1)  # third and fourth: codes as plants have them
        sim.inject("ST10", part_id=NON_ASCII)
        sim.inject("ST10", part_id="DC1\x07BEL")  # fifth: a control character
        sim.inject("ST20", part_id="X" * 10_000)  # an absurd PartId for the first part

    sim = asyncio.run(_run(line, opts, 5, before=inject))
    rows = _rows(db)
    st10 = [r for r in rows if r.station_id == "ST10"]
    assert [r.error_code for r in st10[:2]] == [ErrorCode.EMPTY_PART_ID, ErrorCode.UNKNOWN_PROGRAM]
    assert not st10[0].ok and not st10[1].ok and st10[0].part_id is None
    assert len(st10) == 5  # the cell went on with the next parts
    st20 = [r for r in rows if r.station_id == "ST20"]
    assert st20[0].error_code == ErrorCode.INVALID_PART_ID and st20[0].part_id is None
    assert "10000 characters, more than the line's 256" in st20[0].detail
    latched = {(res.job_seq): res for res in sim.completed("ST10")}
    assert latched[st10[0].job_seq].error_code == ErrorCode.EMPTY_PART_ID
    assert latched[st10[0].job_seq].result == 2
    # Real part codes are taken verbatim: the robot ran, and the record keeps them as sent.
    for code in (GS1, NON_ASCII):
        jobs = [r for r in rows if r.part_id == code]
        assert [r.station_id for r in jobs] == ["ST10", "ST20", "ST30"], code
        assert all(r.robot_id and r.error_code != ErrorCode.INVALID_PART_ID for r in jobs)
    # A control character other than GS is refused, naming it, at every station.
    refused = [r for r in rows if "U+0007" in r.detail]
    assert [(r.station_id, r.error_code, r.part_id) for r in refused] == [
        (sid, ErrorCode.INVALID_PART_ID, None) for sid in ("ST10", "ST20", "ST30")
    ]
    assert "character U+0007 at position 4 is not printable" in refused[0].detail
    engine = create_engine(db)
    with Session(engine) as s:
        alerts = s.scalars(select(m.Alert).order_by(m.Alert.id)).all()
        bad = [a for a in alerts if a.kind == "bad_input"]
        assert {a.error_code for a in bad} == {
            ErrorCode.EMPTY_PART_ID,
            ErrorCode.UNKNOWN_PROGRAM,
            ErrorCode.INVALID_PART_ID,
        }
        assert any("ProgramNo 77" in a.message for a in bad)
        assert s.get(m.Part, GS1) is not None and s.get(m.Part, NON_ASCII) is not None
    engine.dispose()
    _part_comes_back_verbatim(db, monkeypatch)


def _part_comes_back_verbatim(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``intern part`` finds the codes as recorded, a separator typed as <GS> too."""
    monkeypatch.setenv("INTERN_DATABASE_URL", db)
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    for code, typed in ((GS1, GS1), (NON_ASCII, NON_ASCII), (GS1, GS1.replace("\x1d", "<GS>"))):
        res = runner.invoke(app, ["part", typed, "--format", "json"])
        assert res.exit_code == 0, res.output
        doc = json.loads(res.stdout)
        assert doc["part_id"] == code
        assert doc["route"] == ["ST10", "ST20", "ST30"]
        assert [j["station_id"] for j in doc["jobs"]] == doc["route"]
    table = runner.invoke(app, ["part", GS1], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and GS1.replace("\x1d", "<GS>") in table.output
