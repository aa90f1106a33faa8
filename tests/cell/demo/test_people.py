"""The simulated people answer the alerts raised on their own run's time only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from cell.config import load_line_config, sample_config_path
from cell.demo.people import People
from cell.line.clock import Clock
from cell.record import models as m
from cell.record.roster import sync_line

T0 = datetime(2026, 3, 4, 6, 0, tzinfo=UTC)


def test_alerts_another_run_left_open_are_left_for_a_person(db_session: Session) -> None:
    sync_line(db_session, load_line_config(sample_config_path()))
    ids = {}
    for name, hours in (("before", -1), ("in run", 0.5), ("after", 3)):
        alert = m.Alert(
            station_id="ST10", kind="nok_hold", message=name, raised_at=T0 + timedelta(hours=hours)
        )
        db_session.add(alert)
        db_session.commit()
        ids[name] = alert.id
    sessions = sessionmaker(bind=db_session.connection(), join_transaction_mode="create_savepoint")
    # A run placed between the other runs' records: 06:00, never reading past 08:00.
    clock = Clock(300.0, T0, running=False, limit=T0 + timedelta(hours=2))
    people = People(sessions, clock, T0)
    assert people.alerts_to_answer() == [ids["in run"]]
