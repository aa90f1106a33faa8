"""A job the PLC gives up mid-run: the robot stops at its next safe point, the job is on
record with what the robot did, and the PLC's next job is acknowledged without waiting
for the old result's acknowledgement timeout."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from cell.record import models as m
from mes_bridge.tags import Tag
from robot.fence import record_key
from robot.jobs import ErrorCode
from tests.cell.harness import running_line, sample_line

pytestmark = pytest.mark.slow
SLOW = 5.0  # ~11 s per nut job: a stop lands well before the job's end


async def test_the_plc_abandoning_a_job_stops_the_robot_and_serves_the_next_job(
    tmp_path: Path,
    make_database: Callable[[], str],
    redis_url: str,
    workers,
) -> None:
    line, cfg = sample_line(tmp_path, stations=("ST10",))
    w = workers(cfg, SLOW)
    w.start("R1")
    db = make_database()
    client = redis.Redis.from_url(redis_url)
    async with running_line(line, db, redis_url, tmp_path, scale=SLOW, parts=None) as run:
        await run.until(
            lambda: client.hget(record_key("ST10:0:2"), "state") == b"claimed",
            120,
            "job 2 running on R1",
        )
        time.sleep(2.5)  # a fastener or two into the job
        given_up = time.monotonic()
        run.sim.abandon("ST10")
        await run.until(lambda: run.plc("ST10", Tag.JOB_ACK_SEQ) == 3, 30, "job 3 acknowledged")
        acked_after = time.monotonic() - given_up
        await run.until(lambda: any(r.job_seq == 2 for r in run.rows()), 60, "job 2 recorded aside")
        await run.until(lambda: run.plc("ST10", Tag.RESULT_SEQ) == 3, 120, "job 3 answered")
    assert run.sim.abandoned("ST10") == [2]
    assert 2 not in {r.job_seq for r in run.sim.completed("ST10")}  # no result went to the PLC
    # Nowhere near the 30 s the station used to wait for the old result's latch.
    assert acked_after < 10.0
    rows = {r.job_seq: r for r in run.rows()}
    job2 = rows[2]
    assert not job2.ok and job2.error_code == ErrorCode.ABANDONED
    with run.session() as s:
        driven = s.scalars(select(m.FastenerResult).where(m.FastenerResult.job_id == job2.id)).all()
        alert = s.scalars(select(m.Alert).where(m.Alert.job_id == job2.id)).one()
    assert 0 < len(driven) < 6  # stopped between fasteners, with what it did on record
    assert alert.kind == "abandoned"
    assert rows[3].ok and rows[3].policy_version
    # The robot's own word: it stopped, it did not run to the end of the cycle.
    assert client.hget(record_key("ST10:0:2"), "state") == b"done"
