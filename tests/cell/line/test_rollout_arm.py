"""Routing a station's jobs (real PostgreSQL): no rollout, the arms of a running one,
a promoted version, the database unreachable; and settling a recorded job's arm."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cell.config import load_line_config, sample_config_path
from cell.line.rollout_arm import Route, StationRouting
from cell.record import models as m
from cell.record import rollouts as ro
from cell.record.engine import make_engine, make_sessionmaker
from cell.record.jobs import JobRecord, record_job
from cell.record.rollout_rule import Arm, arm_for
from cell.record.roster import sync_line

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


@pytest.fixture
def sessions(make_database: Callable[[], str]) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(make_database())
    made = make_sessionmaker(engine)
    with made() as s:
        sync_line(s, load_line_config(sample_config_path()))
    yield made
    engine.dispose()


def _keys(arm: Arm, n: int = 2) -> list[str]:
    return [k for k in (f"ST10:0:{i}" for i in range(1, 40)) if arm_for(k, 0.5) is arm][:n]


def test_without_a_rollout_jobs_run_the_workers_default(sessions) -> None:
    assert StationRouting(sessions, "ST10", lambda: True).route("ST10:0:1") == Route(None)


def test_a_running_rollout_sends_each_job_to_its_keys_arm(sessions) -> None:
    with sessions() as s:
        rollout = ro.start(s, "ST10", "v2", author="sup-anna", share=0.5, incumbent="v1").id
    routing = StationRouting(sessions, "ST10", lambda: True)
    for key in _keys(Arm.CANDIDATE):
        assert routing.route(key) == Route("v2", rollout, Arm.CANDIDATE)
    for key in _keys(Arm.INCUMBENT):  # the station has no promoted version: the default
        assert routing.route(key) == Route(None, rollout, Arm.INCUMBENT)


def test_a_promoted_candidate_is_the_stations_version_then_the_incumbent(sessions) -> None:
    with sessions() as s:
        first = ro.start(s, "ST10", "v2", author="sup-anna", incumbent="v1")
        first.state, first.decided_at = "promoted", T0
        s.commit()
    online = [True]
    routing = StationRouting(sessions, "ST10", lambda: online[0])
    assert routing.route("ST10:0:1") == Route("v2")
    with sessions() as s:
        rollout = ro.start(s, "ST10", "v3", author="sup-anna", share=0.5).id
        assert s.get(m.Rollout, rollout).incumbent_version == "v2"  # type: ignore[union-attr]
    for key in _keys(Arm.INCUMBENT):
        assert routing.route(key) == Route("v2", rollout, Arm.INCUMBENT)
    online[0] = False  # the record down: no rollout, the last promoted version read
    assert routing.route(_keys(Arm.CANDIDATE)[0]) == Route("v2")


def test_an_unreachable_database_means_no_rollout() -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    routing = StationRouting(make_sessionmaker(engine), "ST10", lambda: True)
    assert routing.route("ST10:0:1") == Route(None)
    engine.dispose()


def test_settling_records_the_arm_and_the_rules_evidence(sessions) -> None:
    with sessions() as s:
        rollout = ro.start(s, "ST10", "v2", author="sup-anna", share=0.5, incumbent="v1").id
    routing = StationRouting(sessions, "ST10", lambda: True)
    key = _keys(Arm.CANDIDATE, 1)[0]
    rec = JobRecord(
        station_id="ST10",
        epoch=0,
        job_seq=int(key.rsplit(":", 1)[1]),
        part_id=None,
        program_no=1,
        policy_version="v2",
        started_at=T0,
        ended_at=T0,
        cycle_time_ms=60000,
        ok=True,
    )
    with sessions() as s:
        job_id = record_job(s, rec).job_id
    routing.settle(routing.route(key), rec)
    routing.settle(routing.route(key), rec)  # a repeat changes nothing
    with sessions() as s:
        assert s.execute(select(m.RolloutJob.job_id, m.RolloutJob.arm)).all() == [
            (job_id, "candidate")
        ]
        row = s.get(m.Rollout, rollout)
        assert row is not None and row.state == "running"
        assert row.evidence["jobs"] == {"candidate": 1, "incumbent": 0}
