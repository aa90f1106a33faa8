"""Pareto, SPC and cycle time against independent computations on the raw rows."""

from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from cell.insight import (
    QueryError,
    Window,
    control_chart,
    cycle_distribution,
    fastener_pareto,
    nelson_violations,
    nok_pareto,
    spc_summary,
)

WINDOW = Window(datetime(2026, 3, 8, 2, 3, tzinfo=UTC), datetime(2026, 3, 9, 21, 30, tzinfo=UTC))
RANGE = {"a": WINDOW.start, "b": WINDOW.end}


def test_nok_pareto_by_error_code(hist: Session) -> None:
    got = nok_pareto(hist, WINDOW)
    want = dict(
        hist.execute(
            text(
                "SELECT error_code, count(*) FROM jobs WHERE NOT ok AND "
                "ended_at >= :a AND ended_at < :b GROUP BY 1"
            ),
            RANGE,
        ).all()
    )
    assert {r.error_code: r.count for r in got} == want
    counts = [r.count for r in got]
    assert counts == sorted(counts, reverse=True)
    assert got[-1].cumulative == pytest.approx(1.0)
    assert got[0].name in {"cross_thread", "under_torque", "missing_nut", "misplaced"}
    one = nok_pareto(hist, WINDOW, station="L1-ST50")
    assert all(r.error_code >= 300 for r in one)


def test_fastener_pareto_by_position(hist: Session) -> None:
    got = fastener_pareto(hist, WINDOW, station="L1-ST10")
    want = {
        tuple(r[:4]): r[4]
        for r in hist.execute(
            text("""
        SELECT j.station_id, f.side, f.position, f.error_code, count(*)
        FROM jobs j JOIN fastener_results f ON f.job_id = j.id
        WHERE NOT f.ok AND j.station_id = 'L1-ST10' AND j.ended_at >= :a AND j.ended_at < :b
        GROUP BY 1, 2, 3, 4"""),
            RANGE,
        )
    }
    assert {(r.station_id, r.side, r.position, r.error_code): r.count for r in got} == want
    assert len(got) > 3


def test_spc_capability_matches_numpy_on_raw_values(hist: Session) -> None:
    got = {(r.side, r.position): r for r in spc_summary(hist, WINDOW, station="L1-ST20")}
    assert len(got) == 4
    for (side, pos), r in got.items():
        rows = np.array(
            hist.execute(
                text("""
            SELECT f.torque_nm, f.ok::int FROM jobs j JOIN fastener_results f ON f.job_id = j.id
            WHERE j.station_id = 'L1-ST20' AND f.side = :s AND f.position = :p
              AND j.ended_at >= :a AND j.ended_at < :b"""),
                RANGE | {"s": side, "p": pos},
            ).all()
        )
        for cap, vals in ((r.all, rows[:, 0]), (r.ok_only, rows[rows[:, 1] == 1, 0])):
            mean, sd = vals.mean(), vals.std(ddof=1)
            assert cap.n == len(vals)
            assert cap.mean == pytest.approx(mean, rel=1e-9)
            assert cap.sd == pytest.approx(sd, rel=1e-6)
            assert cap.cp == pytest.approx((12 - 8) / (6 * sd), rel=1e-6)
            assert cap.cpk == pytest.approx(min(12 - mean, mean - 8) / (3 * sd), rel=1e-6)
        assert r.ok_only.cpk > r.all.cpk  # NOK fasteners widen the spread
    angle = spc_summary(hist, WINDOW, station="L1-ST20", measure="angle")
    assert {a.lsl for a in angle} == {360.0}


def test_imr_and_xbar_r_limits_match_the_textbook_formulas(hist: Session) -> None:
    chart = control_chart(hist, WINDOW, "L1-ST10", "right", 2, points=60)
    vals = np.array(
        [
            v
            for (v,) in hist.execute(
                text("""
        SELECT f.torque_nm FROM jobs j JOIN fastener_results f ON f.job_id = j.id
        WHERE j.station_id = 'L1-ST10' AND f.side = 'right' AND f.position = 2
          AND j.ended_at >= :a AND j.ended_at < :b ORDER BY j.ended_at DESC LIMIT 60"""),
                RANGE,
            )
        ][::-1]
    )
    mr = np.abs(np.diff(vals)).mean()
    assert [p.value for p in chart.points] == pytest.approx(list(vals))
    assert chart.center == pytest.approx(vals.mean())
    assert chart.ucl == pytest.approx(vals.mean() + 3 * mr / 1.128)
    assert chart.range_ucl == pytest.approx(3.267 * mr)
    xr = control_chart(hist, WINDOW, "L1-ST10", "right", 2, chart="xbar_r", subgroup=5, points=12)
    groups = vals[:60].reshape(12, 5)
    assert [p.value for p in xr.points] == pytest.approx(list(groups.mean(axis=1)))
    rbar = np.ptp(groups, axis=1).mean()
    assert xr.ucl == pytest.approx(groups.mean() + 0.577 * rbar)
    with pytest.raises(QueryError, match="too few"):
        control_chart(hist, WINDOW, "L1-ST50", "left", 1)


def test_nelson_rules_flag_the_points_that_complete_them() -> None:
    flat = [0.1, -0.1] * 10
    assert all(r == () for r in nelson_violations(flat, 0.0, 1.0))
    spike = [*flat, 3.5]
    assert nelson_violations(spike, 0.0, 1.0)[-1] == (1,)
    shift = [0.5] * 9
    assert 2 in nelson_violations(shift, 0.0, 1.0)[8]
    assert 2 not in nelson_violations(shift, 0.0, 1.0)[7]
    trend = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert 3 in nelson_violations(trend, 0.0, 1.0)[5]
    assert 5 in nelson_violations([0.0, 2.5, 2.2], 0.0, 1.0)[2]


def test_cycle_distribution_percentiles_within_a_bin(hist: Session) -> None:
    got = {d.station_id: d for d in cycle_distribution(hist, WINDOW)}
    for st, d in got.items():
        ms = np.array(
            [
                v
                for (v,) in hist.execute(
                    text(
                        "SELECT cycle_time_ms FROM jobs WHERE station_id = :s "
                        "AND cycle_time_ms > 0 AND ended_at >= :a AND ended_at < :b"
                    ),
                    RANGE | {"s": st},
                )
            ]
        )
        assert d.jobs == len(ms) == sum(n for _, n in d.bins)
        assert d.p50_s == pytest.approx(np.percentile(ms, 50) / 1000, abs=0.5)
        assert d.p95_s == pytest.approx(np.percentile(ms, 95) / 1000, abs=0.5)
        assert d.over_takt == pytest.approx((ms >= 76_000).mean())
        assert d.takt_s == 76.0
    assert got["L1-ST50"].p50_s < got["L1-ST10"].p50_s  # handling is quicker than nuts
