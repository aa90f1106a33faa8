"""A station on a shift: technicians, dying workers, reassignment, database outages.

Real parts throughout (see ``harness``); time in the cell and the workers runs faster
than the wall clock so that a job lasts long enough to be interrupted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from cell.packml import PackML
from cell.record import alerts
from cell.record import models as m
from cell.record.assignments import reassign, to_maintenance
from mes_bridge.tags import Tag
from robot.fence import record_key
from robot.jobs import ErrorCode
from tests.cell.harness import running_line, sample_line

pytestmark = pytest.mark.slow
SCALE = 20.0  # a ~55 s nut job takes ~2.8 s of wall time
SLOW = 5.0  # ~11 s per nut job


def _events(session, station_id: str) -> list[tuple[str, str]]:
    return [
        (e.state, e.reason)
        for e in session.scalars(
            select(m.CellStateEvent)
            .where(m.CellStateEvent.station_id == station_id)
            .order_by(m.CellStateEvent.id)
        )
    ]


async def test_nok_on_a_hold_recipe_holds_until_a_technician_clears(
    tmp_path: Path,
    make_database: Callable[[], str],
    redis_url: str,
    workers,
) -> None:
    def hard(data: dict) -> None:
        data["stations"][0]["recipes"][0]["difficulty"] = 5.0  # every nut job fails

    line, cfg = sample_line(tmp_path, hard, stations=("ST10",))
    w = workers(cfg, SCALE)
    w.start("R1")
    db = make_database()
    async with running_line(line, db, redis_url, tmp_path, scale=SCALE, parts=None) as run:
        await run.until(
            lambda: run.plc("ST10", Tag.CELL_STATE) == PackML.HELD, 120, "ST10 held after its NOK"
        )
        # The PLC asked for the next part, the held cell did not take it.
        await run.until(lambda: run.plc("ST10", Tag.JOB_SEQ) == 2, 30, "next job requested")
        assert run.plc("ST10", Tag.JOB_ACK_SEQ) == 1
        assert run.plc("ST10", Tag.RESULT_SEQ) == 1
        latched = run.sim.completed("ST10")
        assert latched[0].result == 2 and latched[0].error_code != 0
        with run.session() as s:
            (alert,) = alerts.open_alerts(s, "ST10")
            assert alert.kind == "nok_hold" and alert.job_id is not None
            assert "ST10 job 1" in alert.message
            alerts.acknowledge(s, alert.id, author="tech-kim")
            alerts.record_rework(s, alert.id, alerts.Rework.SCRAPPED, author="tech-kim")
            alerts.clear(s, alert.id, author="tech-kim")
        await run.until(
            lambda: run.plc("ST10", Tag.JOB_ACK_SEQ) == 2,
            60,
            "job 2 accepted once the alert is cleared",
        )
        with run.session() as s:
            states = [state for state, _ in _events(s, "ST10")]
            assert "held" in states and "unholding" in states
            assert s.get(m.Job, alert.job_id).rework == "scrapped"


async def test_worker_killed_mid_job_ends_it_interrupted_held_and_never_rerun(
    tmp_path: Path,
    make_database: Callable[[], str],
    redis_url: str,
    workers,
) -> None:
    line, cfg = sample_line(tmp_path, stations=("ST10",))
    # Slower time here: the worker must still be mid-job when the test sees it start,
    # however loaded the machine is.
    w = workers(cfg, SLOW)
    w.start("R1")
    db = make_database()
    guard = redis.Redis.from_url(redis_url)
    async with running_line(line, db, redis_url, tmp_path, scale=SLOW, parts=None) as run:
        await run.until(
            lambda: guard.hget(record_key("ST10:0:2"), "state") == b"claimed",
            120,
            "job 2 running on R1",
        )
        w.kill("R1")
        await run.until(
            lambda: run.plc("ST10", Tag.RESULT_SEQ) == 2, 60, "job 2 answered after the worker died"
        )
        latched = {r.job_seq: r for r in run.sim.completed("ST10")}
        assert latched[2].result == 2 and latched[2].error_code == ErrorCode.INTERRUPTED
        await run.until(lambda: run.plc("ST10", Tag.CELL_STATE) == PackML.HELD, 30, "held")
        w.start("R1")  # the robot is back; its lost claim on job 2 must not run it again
        with run.session() as s:
            (alert,) = alerts.open_alerts(s, "ST10")
            assert alert.kind == "interrupted"
            alerts.acknowledge(s, alert.id, author="tech")
            alerts.record_rework(s, alert.id, alerts.Rework.REWORKED_OK, author="tech")
            alerts.clear(s, alert.id, author="tech")
        await run.until(
            lambda: run.plc("ST10", Tag.RESULT_SEQ) == 3, 120, "job 3 done by the restarted worker"
        )
    rows = [r for r in run.rows() if r.station_id == "ST10"]
    assert [r.job_seq for r in rows] == sorted({r.job_seq for r in rows})  # one row each
    job2 = next(r for r in rows if r.job_seq == 2)
    assert not job2.ok and job2.error_code == ErrorCode.INTERRUPTED
    # Job 2 was never finished by any worker: its claim expired and the cell declared it lost.
    assert guard.hget(record_key("ST10:0:2"), "state") == b"lost"


async def test_reassignment_mid_job_takes_effect_at_the_cycle_boundary(
    tmp_path: Path,
    make_database: Callable[[], str],
    redis_url: str,
    workers,
) -> None:
    line, cfg = sample_line(tmp_path, stations=("ST10", "ST20"))
    w = workers(cfg, SCALE)
    w.start("R1")
    w.start("R2")
    db = make_database()
    guard = redis.Redis.from_url(redis_url)
    async with running_line(line, db, redis_url, tmp_path, scale=SCALE, parts=None) as run:
        with run.session() as s:
            to_maintenance(s, "R2", author="sup-lee", reason="camera cleaning")
        await run.until(
            lambda: run.plc("ST20", Tag.CELL_STATE) == PackML.HELD, 60, "ST20 held without a robot"
        )
        await run.until(
            lambda: guard.hget(record_key("ST10:0:2"), "state") == b"claimed",
            120,
            "ST10 job 2 running on R1",
        )
        with run.session() as s:
            reassign(s, "R1", "ST20", author="sup-lee", reason="ST20 short of a robot")
        # R1 finishes the running job at ST10 ...
        await run.until(lambda: run.plc("ST10", Tag.RESULT_SEQ) == 2, 60, "ST10 job 2 done")
        # ... then ST10 has no robot and holds, and R1 works ST20 after walking there.
        await run.until(lambda: run.plc("ST10", Tag.CELL_STATE) == PackML.HELD, 60, "ST10 held")
        await run.until(lambda: run.plc("ST20", Tag.RESULT_SEQ) == 1, 120, "ST20 job 1 done")
        assert run.plc("ST10", Tag.JOB_ACK_SEQ) == 2
        with run.session() as s:
            st20 = _events(s, "ST20")
            assert ("starting", "robot R1 walking from ST10") in st20
            assert any(r == "no robot assigned to the station" for _, r in _events(s, "ST10"))
    rows = {(r.station_id, r.job_seq): r for r in run.rows()}
    assert rows[("ST10", 2)].robot_id == "R1" and rows[("ST10", 2)].ok
    assert rows[("ST20", 1)].robot_id == "R1"


async def test_a_stale_plc_heartbeat_holds_the_station_with_an_alert_until_it_returns(
    tmp_path: Path,
    make_database: Callable[[], str],
    redis_url: str,
    workers,
) -> None:
    line, cfg = sample_line(tmp_path, stations=("ST30",))
    w = workers(cfg, SCALE)
    w.start("R3")
    db = make_database()
    async with running_line(line, db, redis_url, tmp_path, scale=SCALE, parts=None) as run:
        await run.until(lambda: len(run.sim.completed("ST30")) >= 1, 120, "a first part")
        run.sim.set_heartbeat("ST30", False)
        await run.until(
            lambda: run.plc("ST30", Tag.CELL_STATE) == PackML.HELD,
            60,
            "ST30 held on the stale heartbeat",
        )
        acked = run.plc("ST30", Tag.JOB_ACK_SEQ)
        with run.session() as s:
            (alert,) = [a for a in alerts.open_alerts(s, "ST30") if a.kind == "plc_heartbeat"]
            assert "ST30: PLC heartbeat unchanged" in alert.message
        # No job is taken while the PLC program is not running.
        assert run.plc("ST30", Tag.JOB_ACK_SEQ) == acked
        run.sim.set_heartbeat("ST30", True)
        await run.until(
            lambda: run.plc("ST30", Tag.JOB_ACK_SEQ) > acked,
            60,
            "jobs taken again once the heartbeat is back",
        )
        with run.session() as s:
            assert not [a for a in alerts.open_alerts(s, "ST30") if a.kind == "plc_heartbeat"]
            cleared = s.get(m.Alert, alert.id)
            assert cleared.cleared_by == "system" and cleared.cleared_at is not None
