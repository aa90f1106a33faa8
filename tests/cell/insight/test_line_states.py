"""Availability and OEE from the state events the line itself writes: chains of PackML
states at one instant, inserted in one statement by the station's writer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from cell.config import load_line_config, sample_config_path
from cell.insight import Window, availability, oee_by_shift, shift_report
from cell.insight.oee import NO_SHIFT
from cell.line.station_io import StationDb
from cell.packml import PackML, path
from cell.record import models as m
from cell.record.roster import sync_line

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
S = PackML

# One station's day as the station loop writes it: (minute, target state); each change
# is stored as PackML's path from the previous state, all at that minute.
HELD_STATION = [
    (0, S.IDLE),  # orchestrator started: Resetting, Idle
    (1, S.EXECUTE),  # Starting, Execute
    (2, S.COMPLETE),  # Completing, Complete
    (3, S.IDLE),  # Resetting, Idle
    (10, S.HELD),  # no robot: Holding, Held
    (40, S.UNHOLDING),
    (41, S.EXECUTE),
    (42, S.COMPLETE),
    (43, S.IDLE),
    (90, S.STOPPED),  # orchestrator stopping: Stopping, Stopped
]
NEVER_STOPPED = [(0, S.IDLE), (5, S.EXECUTE), (30, S.COMPLETE), (31, S.IDLE)]
ALWAYS_HELD = [(0, S.HELD)]  # Resetting, Holding, Held: no robot from the start


def _write(sessions: sessionmaker[Session], station: str, day: list[tuple[float, S]]) -> None:
    db = StationDb(sessions, station)
    state = S.STOPPED
    for minute, target in day:
        db.state_events(path(state, target), "test", T0 + timedelta(minutes=minute))
        state = target


@pytest.fixture
def line_day(db_session: Session) -> Iterator[Session]:
    """ST10 held 30 min then stopped at 09:30; ST20 in service to now; ST30 held from the
    start; a shift 08:00-09:00 and nothing else."""
    sync_line(db_session, load_line_config(sample_config_path()))
    sessions = sessionmaker(bind=db_session.connection(), join_transaction_mode="create_savepoint")
    _write(sessions, "ST10", HELD_STATION)
    _write(sessions, "ST20", NEVER_STOPPED)
    _write(sessions, "ST30", ALWAYS_HELD)
    db_session.add(m.Shift(name="early", starts_at=T0, ends_at=T0 + timedelta(hours=1)))
    db_session.commit()
    yield db_session


def _state_rollup(s: Session) -> list[tuple[object, ...]]:
    rows = s.execute(
        text(
            "SELECT bucket, station_id, state, round(seconds::numeric, 3) FROM rollup_state_hourly"
        )
    ).all()
    return sorted((tuple(r) for r in rows if r[-1] != 0), key=str)


def test_chains_of_states_keep_the_rollup_equal_to_a_rebuild(line_day: Session) -> None:
    live = _state_rollup(line_day)
    st10 = {(r[0], r[2]): float(r[3]) for r in live if r[1] == "ST10"}
    # The spans before each chain are there: Idle 08:00-08:01, 08:03-08:10, 08:43-09:00;
    # Execute 08:01-08:02, 08:41-08:42.
    assert st10[(T0, "idle")] == (1 + 7 + 17) * 60
    assert st10[(T0, "execute")] == 2 * 60
    line_day.execute(text("SELECT analytics_rebuild('2026-01-05', '2026-01-06')"))
    assert _state_rollup(line_day) == live


def test_availability_counts_the_production_cycle_as_running(line_day: Session) -> None:
    got = availability(line_day, Window(T0, T0 + timedelta(minutes=90)))
    known, running = got["ST10"]
    # Idle 08:00-08:01, 08:03-08:10, 08:43-09:30; Execute 08:01-08:02, 08:41-08:42;
    # Complete 08:02-08:03, 08:42-08:43; Held 08:10-08:40; Unholding 08:40-08:41.
    assert known == pytest.approx(90 * 60)
    assert running == pytest.approx((1 + 7 + 47 + 1 + 1 + 1 + 1) * 60)
    assert got["ST30"] == (pytest.approx(90 * 60), 0.0)


def test_oee_by_shift_on_a_station_held_all_shift_and_one_never_stopped(
    line_day: Session,
) -> None:
    rows = {r.station_id: r for r in oee_by_shift(line_day, Window(T0, T0 + timedelta(days=1)))}
    assert set(rows) == {"ST10", "ST20", "ST30"}
    st30 = rows["ST30"]
    assert st30.planned_s == pytest.approx(3600)
    assert (st30.running_s, st30.availability, st30.performance) == (0.0, 0.0, None)
    assert rows["ST20"].availability == pytest.approx(1.0)
    assert rows["ST10"].availability == pytest.approx((1 + 7 + 17 + 1 + 1 + 1 + 1) * 60 / 3600)
    rep = {st.station_id: st for st in shift_report(line_day, T0, T0 + timedelta(hours=1)).stations}
    for sid, r in rows.items():
        assert rep[sid].availability == pytest.approx(r.availability)


def test_a_window_with_no_shift_plans_the_time_in_service(line_day: Session) -> None:
    w = Window(T0 + timedelta(hours=1), T0 + timedelta(hours=3))
    rows = {r.station_id: r for r in oee_by_shift(line_day, w, station="ST10")}
    st10 = rows["ST10"]
    assert st10.shift == NO_SHIFT
    # 09:00-09:30 in service (Idle), then stopped: not planned, not down.
    assert st10.planned_s == pytest.approx(30 * 60)
    assert st10.availability == pytest.approx(1.0)
