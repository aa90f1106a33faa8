"""Where a simulated run is placed: in the past, never over the line's record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from cell.config import LineConfig, load_line_config, sample_config_path
from cell.demo.placement import place_run, place_shift, record_shift, roster_from
from cell.errors import Refused
from cell.record import assignments as asg
from cell.record import models as m
from cell.record.roster import sync_line

NOW = datetime(2026, 3, 4, 10, 20, tzinfo=UTC)


@pytest.fixture
def line(db_session: Session) -> LineConfig:
    line = load_line_config(sample_config_path())
    sync_line(db_session, line, at=NOW - timedelta(days=1))
    return line


def _run_on_record(s: Session, start: datetime, end: datetime) -> None:
    """A past run's traces at ST10: started, stopped."""
    for state, at in (("idle", start), ("stopped", end)):
        s.add(m.CellStateEvent(station_id="ST10", state=state, state_code=0, reason="", at=at))
    s.commit()


def test_a_run_on_an_empty_record_ends_before_now(db_session: Session) -> None:
    line = load_line_config(sample_config_path())
    placed = place_run(db_session, line, parts=5, now=NOW)
    assert placed.limit is None
    assert NOW - timedelta(hours=1) < placed.origin < NOW - 5 * timedelta(seconds=76)
    # A fresh record's roster begins before any run placed there.
    assert roster_from(placed) < placed.origin


def test_a_run_goes_after_the_record_when_there_is_room(
    db_session: Session, line: LineConfig
) -> None:
    _run_on_record(db_session, NOW - timedelta(hours=3), NOW - timedelta(hours=2))
    placed = place_run(db_session, line, parts=5, now=NOW)
    assert placed.limit is None and placed.origin >= NOW - timedelta(hours=2)


def test_a_run_right_after_another_goes_before_it(db_session: Session, line: LineConfig) -> None:
    _run_on_record(db_session, NOW - timedelta(minutes=10), NOW - timedelta(minutes=1))
    placed = place_run(db_session, line, parts=5, now=NOW)
    assert placed.limit is not None and placed.limit < NOW - timedelta(minutes=10)
    assert placed.origin < placed.limit


def test_a_shift_lies_on_whole_hours_and_ends_by_the_time_its_run_does(
    db_session: Session, line: LineConfig
) -> None:
    start, end, placed = place_shift(db_session, line, hours=3, speed=60.0, now=NOW)
    # 3 h at 60x take 3 min: 10:23 rounds down to 10:00.
    assert (start, end) == (NOW.replace(hour=7, minute=0), NOW.replace(minute=0))
    assert placed.origin == start and placed.limit is None


def test_a_shift_right_after_a_run_goes_before_it_and_leaves_room_to_stop(
    db_session: Session, line: LineConfig
) -> None:
    _run_on_record(db_session, NOW - timedelta(minutes=5), NOW - timedelta(minutes=1))
    start, end, placed = place_shift(db_session, line, hours=1, speed=300.0, now=NOW)
    assert (start, end) == (NOW.replace(hour=9, minute=0), NOW.replace(minute=0))
    assert placed.limit is not None and end < placed.limit < NOW - timedelta(minutes=5)
    record_shift(db_session, "sim", start, end)
    _run_on_record(db_session, start, end + timedelta(minutes=1))
    # The next one goes before that shift, which now begins the record.
    start2, end2, _ = place_shift(db_session, line, hours=1, speed=300.0, now=NOW)
    assert (start2, end2) == (start - timedelta(hours=2), start - timedelta(hours=1))


def test_a_run_whose_roster_changed_since_the_record_began_is_refused(
    db_session: Session, line: LineConfig
) -> None:
    _run_on_record(db_session, NOW - timedelta(minutes=10), NOW - timedelta(minutes=6))
    five_ago = NOW - timedelta(minutes=5)
    asg.to_maintenance(db_session, "R1", author="sup", reason="check", at=five_ago)
    with pytest.raises(Refused, match="roster changed") as err:
        place_run(db_session, line, parts=5, now=NOW)
    assert "empty directory" in str(err.value)
    with pytest.raises(Refused, match="whole UTC hours"):
        place_shift(db_session, line, hours=1, speed=300.0, now=NOW)
