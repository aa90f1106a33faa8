"""Redis restarted in the middle of a run loses no job: every job the PLC completed is
on record exactly once, and the line goes on after the broker returns."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import pytest

from cell.services import EmbeddedRedis
from mes_bridge.tags import Tag
from robot.jobs import ErrorCode
from tests.cell.harness import Workers, running_line, sample_line

pytestmark = pytest.mark.slow
SCALE = 20.0


async def test_redis_restart_mid_run_loses_no_job(
    tmp_path: Path,
    make_database: Callable[[], str],
) -> None:
    rd = EmbeddedRedis(tmp_path / "redis")  # our own server, with its append-only file
    url = rd.start()
    port = urlparse(url).port
    line, cfg = sample_line(tmp_path, stations=("ST30",))
    workers = Workers(cfg, url, SCALE, tmp_path / "logs")
    workers.start("R3")
    db = make_database()
    try:
        async with running_line(line, db, url, tmp_path, scale=SCALE, parts=None) as run:
            await run.until(lambda: len(run.sim.completed("ST30")) >= 2, 120, "2 parts")
            await run.until(
                lambda: run.plc("ST30", Tag.JOB_ACK_SEQ) != run.plc("ST30", Tag.RESULT_SEQ),
                60,
                "a job in flight",
            )
            rd.stop()
            await asyncio.sleep(5)
            rd.start(port=port)
            done_before = len(run.sim.completed("ST30"))
            await run.until(
                lambda: len(run.sim.completed("ST30")) >= done_before + 3,
                180,
                "three more parts after the restart",
            )
            await run.until(
                lambda: run.plc("ST30", Tag.JOB_ACK_SEQ) == run.plc("ST30", Tag.RESULT_SEQ),
                60,
                "no job in flight",
            )
            latched = list(run.sim.completed("ST30"))
    finally:
        workers.stop_all()
        rd.stop()
    rows = {r.job_seq: r for r in run.rows()}
    assert len(rows) == len(run.rows()), "a job recorded twice"
    for res in latched:
        assert res.job_seq in rows, f"job {res.job_seq} latched by the PLC but not recorded"
        assert (1 if rows[res.job_seq].ok else 2) == res.result
    # The job in flight during the restart finished normally: its result was kept.
    lost = {ErrorCode.INTERRUPTED, ErrorCode.ROBOT_TIMEOUT, ErrorCode.DISPATCH_FAILED}
    assert not [r.job_seq for r in rows.values() if r.error_code in lost]
