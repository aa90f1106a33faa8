"""Availability and OEE from state events; rollups kept by triggers equal a rebuild."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from cell.insight import Window, availability, oee_by_shift, part_history, shift_report
from cell.record import alerts
from cell.record import models as m
from cell.record.jobs import JobRecord, record_job

WINDOW = Window(datetime(2026, 3, 8, 4, 20, tzinfo=UTC), datetime(2026, 3, 9, 13, 10, tzinfo=UTC))
DOWN = {"held", "stopped", "aborted", "suspended", "holding", "stopping", "aborting"}


def _raw_states(hist: Session, station: str, a: datetime, b: datetime) -> dict[str, float]:
    """Seconds per state in [a, b): each event's state lasts to the next event, the last
    one to now; computed in Python from all the station's events."""
    events = hist.execute(
        text("SELECT state, at FROM cell_state_events WHERE station_id = :s ORDER BY at, id"),
        {"s": station},
    ).all()
    now = datetime.now(UTC)
    out: dict[str, float] = {}
    for (state, at), nxt in zip(events, [*events[1:], (None, now)], strict=True):
        lo, hi = max(at, a), min(nxt[1], b)
        if hi > lo:
            out[state] = out.get(state, 0.0) + (hi - lo).total_seconds()
    return out


def test_availability_matches_event_spans(hist: Session) -> None:
    got = availability(hist, WINDOW)
    assert len(got) == 5
    for st, (known, running) in got.items():
        want = _raw_states(hist, st, WINDOW.start, WINDOW.end)
        assert known == pytest.approx(sum(want.values()), abs=1e-3)
        assert running == pytest.approx(sum(v for k, v in want.items() if k not in DOWN), abs=1e-3)
        assert 0.5 < running / known < 1.0  # planned stop, faults and holds all cost


def test_oee_per_station_and_shift(hist: Session) -> None:
    rows = oee_by_shift(hist, WINDOW, station="L1-ST10")
    shifts = hist.execute(
        text(
            "SELECT name, starts_at, ends_at FROM shifts WHERE starts_at >= :a "
            "AND starts_at < :b ORDER BY starts_at"
        ),
        {"a": WINDOW.start, "b": WINDOW.end},
    ).all()
    assert [r.starts_at for r in rows] == [s[1] for s in shifts]
    for r in rows:
        st = _raw_states(hist, "L1-ST10", r.starts_at, r.ends_at)
        running = sum(v for k, v in st.items() if k not in DOWN)
        parts, fp = hist.execute(
            text("""SELECT count(*),
            count(*) FILTER (WHERE ok AND attempt = 1) FROM jobs WHERE station_id = 'L1-ST10'
            AND ended_at >= :a AND ended_at < :b"""),
            {"a": r.starts_at, "b": r.ends_at},
        ).one()
        assert r.planned_s == pytest.approx(8 * 3600, abs=1e-3)
        assert r.availability == pytest.approx(running / (8 * 3600), abs=1e-6)
        assert r.quality == pytest.approx(fp / parts)
        assert r.performance == pytest.approx(parts * 76 / running)
        assert r.oee == pytest.approx(r.availability * r.performance * r.quality)


def test_shift_report_per_station(hist: Session) -> None:
    a, b = datetime(2026, 3, 9, 6, tzinfo=UTC), datetime(2026, 3, 9, 14, tzinfo=UTC)
    rep = shift_report(hist, a, b)
    assert [s.station_id for s in rep.stations] == [f"L1-ST{i}0" for i in range(1, 6)]
    for s in rep.stations:
        parts, fp, good = hist.execute(
            text("""SELECT count(*),
            count(*) FILTER (WHERE ok AND attempt = 1),
            count(*) FILTER (WHERE ok OR rework = 'reworked_ok') FROM jobs
            WHERE station_id = :s AND ended_at >= :a AND ended_at < :b"""),
            {"s": s.station_id, "a": a, "b": b},
        ).one()
        assert (s.parts, s.first_pass_yield) == (parts, fp / parts)
        assert s.final_yield == pytest.approx(good / parts)
        n, ack, mtta = hist.execute(
            text("""SELECT count(*), count(acknowledged_at),
            avg(extract(epoch FROM acknowledged_at - raised_at)) FROM alerts
            WHERE station_id = :s AND raised_at >= :a AND raised_at < :b"""),
            {"s": s.station_id, "a": a, "b": b},
        ).one()
        assert (s.alerts, s.acknowledged) == (n, ack)
        if n:
            assert s.mtta_s == pytest.approx(float(mtta)) and s.mttr_s > s.mtta_s
        assert s.takt_s == 76.0 and s.cycle_p95_s < 76.0
        nok = hist.execute(
            text(
                "SELECT count(*) FROM jobs WHERE NOT ok AND station_id = :s "
                "AND ended_at >= :a AND ended_at < :b"
            ),
            {"s": s.station_id, "a": a, "b": b},
        ).scalar()
        assert sum(c for _, _, c in s.nok_pareto) == nok


def _snapshot(session: Session) -> dict[str, list[tuple]]:
    out = {}
    for table, cols in (
        ("rollup_jobs_hourly", "*"),
        ("rollup_nok_daily", "*"),
        ("rollup_cycle_daily", "*"),
        (
            "rollup_fasteners_daily",
            "day, station_id, side, position, ok, error_code, n, round(torque_sum::numeric, 6)",
        ),
        ("rollup_state_hourly", "bucket, station_id, state, round(seconds::numeric, 3)"),
    ):
        rows = session.execute(text(f"SELECT {cols} FROM {table}")).all()
        out[table] = sorted((tuple(r) for r in rows if all(v != 0 for v in r[-1:])), key=str)
    return out


def test_triggers_keep_rollups_equal_to_a_rebuild(db_session: Session) -> None:
    """Live recording (jobs, fasteners, a rework, state events out of order) through the
    triggers leaves the same rollups as recomputing them from the raw rows."""
    from cell.config import load_line_config, sample_config_path
    from cell.record.roster import sync_line
    from robot.jobs import FastenerResult, Side

    s = db_session
    sync_line(s, load_line_config(sample_config_path()))
    t0 = datetime(2026, 1, 5, 9, 58, tzinfo=UTC)
    for i in range(8):
        start = t0 + timedelta(seconds=76 * i)
        fast = [
            FastenerResult(
                position=1,
                side=Side.LEFT,
                torque_nm=20 + i % 3,
                angle_deg=700,
                torque_min_nm=18,
                torque_max_nm=26,
                angle_min_deg=540,
                angle_max_deg=900,
                ok=i != 3,
                error_code=201 if i == 3 else 0,
            )
        ]
        rec = record_job(
            s,
            JobRecord(
                station_id="ST10",
                epoch=0,
                job_seq=i + 1,
                part_id=f"P{i}",
                program_no=1,
                robot_id="R1",
                task="nut_install",
                policy_version="v1",
                started_at=start,
                ended_at=start + timedelta(seconds=64),
                cycle_time_ms=64000 + 700 * i,
                ok=i != 3,
                error_code=201 if i == 3 else 0,
                fasteners=fast,
            ),
        )
        if i == 3:
            alert = m.Alert(
                station_id="ST10",
                job_id=rec.job_id,
                part_id="P3",
                kind="nok",
                error_code=201,
                message="cross thread",
            )
            s.add(alert)
            s.commit()
    alerts.acknowledge(s, alert.id, author="tech")
    alerts.record_rework(s, alert.id, alerts.Rework.REWORKED_OK, author="tech")
    for state, minute in (("execute", 0), ("held", 30), ("idle", 95), ("execute", 10)):
        s.add(
            m.CellStateEvent(
                station_id="ST20",
                state=state,
                state_code=0,
                reason="",
                at=t0 + timedelta(minutes=minute),
            )
        )
        s.commit()
    live = _snapshot(s)
    assert sum(r[6] for r in live["rollup_jobs_hourly"]) == 8
    assert sum(r[9] for r in live["rollup_jobs_hourly"]) == 1  # reworked_ok
    assert {r[2]: r[3] for r in live["rollup_state_hourly"] if r[1] == "ST20"}
    s.execute(text("SELECT analytics_rebuild('2026-01-05', '2026-01-06')"))
    assert _snapshot(s) == live


def test_part_genealogy_follows_the_part_along_the_line(hist: Session) -> None:
    part = hist.execute(
        text("""SELECT part_id FROM jobs WHERE NOT ok AND station_id = 'L1-ST10'
                                ORDER BY ended_at LIMIT 1""")
    ).scalar_one()
    h = part_history(hist, part)
    assert h is not None and h.part_id == part
    stations = [j.station_id for j in h.jobs]
    assert stations[0] == "L1-ST10" and stations == sorted(stations)
    first = h.jobs[0]
    assert not first.ok and first.error_name and first.alerts
    assert len(first.fasteners) == 6 and sum(not f.ok for f in first.fasteners) == 1
    assert any(f.trace_samples == 32 for f in first.fasteners if not f.ok)
    assert part_history(hist, "NO-SUCH-PART") is None
