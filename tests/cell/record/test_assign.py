from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cell.config import load_line_config, sample_config_path
from cell.record import alerts
from cell.record import models as m
from cell.record.assignments import AssignmentRefused, reassign, swap, to_maintenance
from cell.record.jobs import JobRecord, record_job
from cell.record.roster import robot_for_station, roster, sync_line


@pytest.fixture
def line_db(db_session: Session) -> Session:
    sync_line(db_session, load_line_config(sample_config_path()))
    return db_session


def test_reassignment_to_a_station_without_the_skill_is_refused_with_the_reason(
    line_db: Session,
) -> None:
    to_maintenance(line_db, "R1", author="sup-anna", reason="gripper check")
    with pytest.raises(AssignmentRefused, match="R3 has no skill for nut_install needed at ST10"):
        reassign(line_db, "R3", "ST10", author="sup-anna", reason="cover")
    assert robot_for_station(line_db, "ST30") == "R3"


def test_reassign_records_author_reason_and_closes_the_old_interval(line_db: Session) -> None:
    to_maintenance(line_db, "R1", author="sup-anna", reason="gripper check")
    assert robot_for_station(line_db, "ST10") is None
    reassign(line_db, "R2", "ST10", author="sup-anna", reason="cover nut station")
    assert robot_for_station(line_db, "ST10") == "R2"
    assert robot_for_station(line_db, "ST20") is None
    rows = line_db.scalars(
        select(m.Assignment).where(m.Assignment.robot_id == "R2").order_by(m.Assignment.id)
    ).all()
    assert rows[0].valid_to is not None and rows[0].station_id == "ST20"
    assert rows[-1].valid_to is None and rows[-1].author == "sup-anna"
    assert rows[-1].reason == "cover nut station"


def test_occupied_station_unknown_ids_and_missing_author_are_refused(line_db: Session) -> None:
    with pytest.raises(AssignmentRefused, match="ST20 is served by R2"):
        reassign(line_db, "R1", "ST20", author="s", reason="r")
    with pytest.raises(AssignmentRefused, match="robot 'R9' is not on this line"):
        reassign(line_db, "R9", "ST20", author="s", reason="r")
    with pytest.raises(AssignmentRefused, match="station 'ST99'"):
        reassign(line_db, "R1", "ST99", author="s", reason="r")
    with pytest.raises(AssignmentRefused, match="author"):
        reassign(line_db, "R1", "ST20", author=" ", reason="r")


def test_swap_checks_both_skills(line_db: Session) -> None:
    swap(line_db, "R1", "R2", author="sup", reason="balance")
    assert (robot_for_station(line_db, "ST10"), robot_for_station(line_db, "ST20")) == ("R2", "R1")
    with pytest.raises(AssignmentRefused, match="R1 has no skill for material_handling"):
        swap(line_db, "R1", "R3", author="sup", reason="x")
    entries = {e.robot_id: e for e in roster(line_db)}
    assert entries["R1"].station_id == "ST20" and entries["R1"].author == "sup"


def test_alert_steps_in_order_keep_times_and_authors(line_db: Session) -> None:
    now = datetime.now(UTC)
    rec = record_job(
        line_db,
        JobRecord(
            station_id="ST10",
            epoch=0,
            job_seq=1,
            part_id="P",
            program_no=1,
            started_at=now,
            ended_at=now,
            cycle_time_ms=1,
            ok=False,
            error_code=201,
        ),
    )
    a = m.Alert(
        station_id="ST10",
        job_id=rec.job_id,
        part_id="P",
        kind="nok",
        error_code=201,
        message="cross thread",
    )
    line_db.add(a)
    line_db.commit()
    with pytest.raises(alerts.AlertRefused, match="acknowledge"):
        alerts.clear(line_db, a.id, author="tech")
    alerts.acknowledge(line_db, a.id, author="tech-bo")
    with pytest.raises(alerts.AlertRefused, match="rework outcome"):
        alerts.clear(line_db, a.id, author="tech-bo")
    alerts.record_rework(line_db, a.id, alerts.Rework.REWORKED_OK, author="tech-bo")
    alerts.clear(line_db, a.id, author="tech-bo")
    assert alerts.open_alerts(line_db) == []
    assert line_db.get(m.Job, rec.job_id).rework == "reworked_ok"
    row = line_db.get(m.Alert, a.id)
    assert row.acknowledged_by == row.reworked_by == row.cleared_by == "tech-bo"
    assert row.raised_at <= row.acknowledged_at <= row.cleared_at
    assert line_db.scalar(select(func.count()).select_from(m.Alert)) == 1
