"""A whole simulated 3-hour shift on the sample line, checked against the raw tables."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import create_engine, text

from cell.config import load_line_config, sample_config_path
from cell.demo.runner import run_shift
from cell.settings import Settings

pytestmark = pytest.mark.slow


def test_three_hour_shift_report_matches_an_independent_count(
    tmp_path: Path,
    make_database: Callable[[], str],
    redis_url: str,
) -> None:
    db = make_database()
    # The shift's bookkeeping is under test, not the robots: the scripted expert keeps the
    # 3-hour shift to about a minute and a half of wall time.
    settings = Settings(database_url=db, redis_url=redis_url, data_dir=tmp_path, policy="expert")
    console = Console(record=True, width=140)
    report = run_shift(
        settings,
        load_line_config(sample_config_path()),
        sample_config_path(),
        hours=3,
        speed=180.0,
        console=console,
    )
    assert "Shift" in console.export_text()
    engine = create_engine(db)
    with engine.connect() as c:
        window = {"a": report.start, "b": report.end}
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
                "SELECT robot_id, station_id FROM assignments WHERE author = 'sup-sim' ORDER BY id"
            )
        ).all()
    engine.dispose()
    by_station = {st.station_id: st for st in report.stations}
    assert set(by_station) == {"ST10", "ST20", "ST30"}
    for sid, r in raw.items():
        st = by_station[sid]
        assert st.jobs == r.jobs
        assert st.first_pass_yield == pytest.approx(r.first_pass / r.jobs)
        assert st.final_yield == pytest.approx(r.good / r.jobs)
        assert st.cycle_p50_s is not None and st.cycle_p50_s < 76
    for sid, a in al.items():
        st = by_station[sid]
        assert (st.alerts, st.acknowledged, st.cleared) == (a.n, a.acked, a.cleared)
        if a.mtta is not None:
            assert st.mtta_s == pytest.approx(float(a.mtta))
    # A shift at the 76 s takt: about 142 parts per station at most.
    assert all(40 <= r.jobs <= 143 for r in raw.values())
    # The supervisor's moves happened: maintenance, cover, return.
    assert [tuple(m) for m in moves] == [("R1", None), ("R2", "ST10"), ("R1", "ST20")]
    assert sum(a.cleared for a in al.values()) >= 1, "a technician intervened"
