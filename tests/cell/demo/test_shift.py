"""A simulated shift on the sample line (``intern demo --shift``), checked against the raw
tables: one 1-hour run at 300x, in which the supervisor sends R1 to maintenance (ST10
without a robot), covers ST10 with R2 (ST20 held for half an hour) and leaves R3 at ST30
throughout."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import redis
from rich.console import Console
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from cell import insight as an
from cell.config import load_line_config, sample_config_path
from cell.demo.runner import run_shift
from cell.insight.report import ShiftReport
from cell.settings import Settings
from tests.cell.demo.record_checks import later_than, station_figures
from tests.conftest import make_url_db, rolled_back_session

pytestmark = pytest.mark.slow

TAKT_S = 76.0  # every recipe of the sample line


@dataclass(frozen=True)
class ShiftRun:
    db: str
    report: ShiftReport
    output: str
    finished: datetime


@pytest.fixture(scope="module")
def shift(
    tmp_path_factory: pytest.TempPathFactory,
    make_database: Callable[[], str],
    redis_server_url: str,
) -> Iterator[ShiftRun]:
    db = make_database()
    broker = make_url_db(redis_server_url, 9)
    client = redis.Redis.from_url(broker)
    client.flushdb()
    # The shift's bookkeeping is under test, not the robots: the scripted expert keeps the
    # hour to about 15 s of wall time.
    settings = Settings(
        database_url=db,
        redis_url=broker,
        data_dir=tmp_path_factory.mktemp("shift"),
        policy="expert",
    )
    console = Console(record=True, width=160)
    report = run_shift(
        settings,
        load_line_config(sample_config_path()),
        sample_config_path(),
        hours=1,
        speed=300.0,
        console=console,
    )
    yield ShiftRun(db, report, console.export_text(), datetime.now(UTC))
    client.flushdb()
    client.close()


def test_the_shift_lies_in_the_past_and_nothing_on_record_is_later_than_now(
    shift: ShiftRun,
) -> None:
    assert shift.report.end <= shift.finished
    assert shift.report.end - shift.report.start == timedelta(hours=1)
    assert shift.report.start.minute == shift.report.start.second == 0
    engine = create_engine(shift.db)
    with engine.connect() as c:
        assert later_than(c, datetime.now(UTC)) == {}
        first = c.execute(text("SELECT min(at) FROM cell_state_events")).scalar()
        # And everything in its order: acts after what they answer, intervals forward.
        backwards = c.execute(
            text("""
            SELECT (SELECT count(*) FROM alerts WHERE acknowledged_at < raised_at
                    OR cleared_at < raised_at OR reworked_at < raised_at),
                   (SELECT count(*) FROM assignments WHERE valid_to < valid_from),
                   (SELECT count(*) FROM jobs WHERE ended_at < started_at)""")
        ).one()
    engine.dispose()
    assert tuple(backwards) == (0, 0, 0)
    # The line's clock starts once the stations are up: the shift's first events are at
    # its start, not minutes into it.
    assert first == shift.report.start


def test_availability_and_oee_per_station_equal_an_independent_count(shift: ShiftRun) -> None:
    rep = shift.report
    engine = create_engine(shift.db)
    now = datetime.now(UTC)
    with engine.connect() as c:
        raw = {
            st.station_id: station_figures(c, st.station_id, TAKT_S, rep.start, rep.end, now)
            for st in rep.stations
        }
    engine.dispose()
    by_station = {st.station_id: st for st in rep.stations}
    assert set(by_station) == {"ST10", "ST20", "ST30"}
    for sid, want in raw.items():
        got = by_station[sid]
        assert got.parts == want.parts > 0
        assert got.availability == pytest.approx(want.availability, rel=1e-6), sid
        assert got.oee == pytest.approx(want.oee, rel=1e-6), sid
    # ST20 waited half an hour for a robot, ST10 up to two minutes (and any NOK hold); R3
    # never left ST30, whose recipe goes on after a NOK.
    assert raw["ST20"].held_s > 20 * 60
    assert raw["ST10"].held_s > 0
    assert raw["ST30"].held_s == 0 and by_station["ST30"].availability == pytest.approx(1.0)
    assert by_station["ST20"].availability < by_station["ST10"].availability < 1.0
    assert "OEE" in shift.output and "avail" in shift.output


def test_oee_by_shift_agrees_with_the_report(shift: ShiftRun) -> None:
    rep = shift.report
    with rolled_back_session(shift.db) as s:
        rows = an.oee_by_shift(s, an.Window.last(1))
    assert {r.station_id for r in rows} == {"ST10", "ST20", "ST30"}
    by_station = {st.station_id: st for st in rep.stations}
    for r in rows:
        assert (r.starts_at, r.ends_at) == (rep.start, rep.end)
        st = by_station[r.station_id]
        assert r.parts == st.parts
        assert r.availability == pytest.approx(st.availability, rel=1e-9)
        assert r.oee == pytest.approx(st.oee, rel=1e-9)


def _every_query(s: Session, w: an.Window, station: str | None) -> None:
    an.yield_by(s, w, an.GROUP_KEYS, station=station)
    an.nok_pareto(s, w, station=station)
    an.fastener_pareto(s, w, station=station)
    an.spc_summary(s, w, station=station)
    an.spc_summary(s, w, station=station, measure="angle")
    an.cycle_distribution(s, w, station=station)
    an.state_seconds(s, w, station=station)
    an.availability(s, w, station=station)
    an.oee_by_shift(s, w, station=station)


def test_every_query_answers_on_every_station_and_window_of_the_shift(shift: ShiftRun) -> None:
    rep = shift.report
    windows = [
        an.Window(rep.start, rep.end),
        an.Window.last(1),
        an.Window.last(3650),
        # Ragged edges: raw rows at both ends, no whole hour.
        an.Window(rep.start.replace(minute=7), rep.end.replace(minute=0, second=1)),
    ]
    with rolled_back_session(shift.db) as s:
        for w in windows:
            for station in (None, "ST10", "ST20", "ST30"):
                _every_query(s, w, station)
            an.shift_report(s, w.start, w.end)
        sides = s.execute(
            text("SELECT DISTINCT station_id, side, position FROM v_fastener_values")
        ).all()
        for station, side, position in sides:
            an.control_chart(s, windows[0], station, side, position)
        part = s.execute(text("SELECT part_id FROM jobs WHERE NOT ok LIMIT 1")).scalar()
        assert part is not None and an.part_history(s, part) is not None


def test_the_report_counts_what_the_tables_hold(shift: ShiftRun) -> None:
    rep = shift.report
    engine = create_engine(shift.db)
    with engine.connect() as c:
        window = {"a": rep.start, "b": rep.end}
        raw = {
            r.station_id: r
            for r in c.execute(
                text("""
            SELECT station_id, count(*) AS jobs,
                   count(*) FILTER (WHERE ok AND attempt = 1) AS first_pass,
                   count(*) FILTER (WHERE ok OR rework = 'reworked_ok') AS good
            FROM jobs WHERE ended_at >= :a AND ended_at < :b GROUP BY station_id"""),
                window,
            )
        }
        al = {
            r.station_id: r
            for r in c.execute(
                text("""
            SELECT station_id, count(*) AS n, count(acknowledged_at) AS acked,
                   count(cleared_at) AS cleared,
                   avg(extract(epoch FROM acknowledged_at - raised_at)) AS mtta
            FROM alerts WHERE raised_at >= :a AND raised_at < :b GROUP BY station_id"""),
                window,
            )
        }
        moves = c.execute(
            text(
                "SELECT robot_id, station_id, valid_from FROM assignments "
                "WHERE author = 'sup-sim' ORDER BY id"
            )
        ).all()
    engine.dispose()
    by_station = {st.station_id: st for st in rep.stations}
    for sid, r in raw.items():
        st = by_station[sid]
        assert st.jobs == r.jobs
        assert st.first_pass_yield == pytest.approx(r.first_pass / r.jobs)
        assert st.final_yield == pytest.approx(r.good / r.jobs)
        assert st.cycle_p50_s is not None and st.cycle_p50_s < TAKT_S
    for sid, a in al.items():
        st = by_station[sid]
        assert (st.alerts, st.acknowledged, st.cleared) == (a.n, a.acked, a.cleared)
        if a.mtta is not None:
            assert st.mtta_s == pytest.approx(float(a.mtta))
            assert st.mtta_s > 0
    # An hour at the 76 s takt: about 47 parts per station at most.
    assert all(10 <= r.jobs <= 48 for r in raw.values())
    # The supervisor's moves happened inside the shift: maintenance, cover, return, and
    # both robots home before the end.
    assert [(m.robot_id, m.station_id) for m in moves] == [
        ("R1", None),
        ("R2", "ST10"),
        ("R1", "ST20"),
        ("R1", "ST10"),
        ("R2", "ST20"),
    ]
    assert all(rep.start < m.valid_from < rep.end for m in moves)
    assert sum(a.cleared for a in al.values()) >= 1, "a technician intervened"
