"""Yield and policy comparison against independent computations on the raw rows."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from cell.insight import QueryError, Window, compare_policies, yield_by
from cell.insight.yields import two_proportions

# Ragged on both ends so that rollup hours and raw edges both take part.
WINDOW = Window(
    datetime(2026, 3, 8, 5, 17, 31, tzinfo=UTC), datetime(2026, 3, 9, 19, 42, 5, tzinfo=UTC)
)


def _raw(hist: Session, group: str, where: str = "") -> dict[tuple, tuple[int, int, int, int]]:
    rows = hist.execute(
        text(f"""
        SELECT {group}, count(*), count(*) FILTER (WHERE attempt > 1),
               count(*) FILTER (WHERE ok AND attempt = 1),
               count(*) FILTER (WHERE ok OR rework = 'reworked_ok')
        FROM jobs WHERE ended_at >= :a AND ended_at < :b {where}
        GROUP BY {group}"""),
        {"a": WINDOW.start, "b": WINDOW.end},
    ).all()
    n = len(group.split(","))
    return {tuple(r[:n]): tuple(r[n:]) for r in rows}


def test_yield_by_station_and_day_matches_raw_rows(hist: Session) -> None:
    got = yield_by(hist, WINDOW, ("station", "day"))
    want = _raw(hist, "station_id, (ended_at AT TIME ZONE 'UTC')::date")
    assert len(got) == len(want) == 5 * 2
    for r in got:
        parts, retried, fp, good = want[(r.station_id, r.day)]
        assert (r.parts, r.retried, r.first_pass_ok, r.final_good) == (parts, retried, fp, good)
    fpy = {r.station_id: r.first_pass_yield for r in got}
    assert all(0.9 < v < 1.0 for v in fpy.values())


def test_days_follow_the_asked_time_zone(hist: Session) -> None:
    got = yield_by(hist, WINDOW, ("day",), tz="America/New_York")
    want = _raw(hist, "(ended_at AT TIME ZONE 'America/New_York')::date")
    assert {r.day: r.parts for r in got} == {k[0]: v[0] for k, v in want.items()}
    with pytest.raises(QueryError, match="time zone"):
        yield_by(hist, WINDOW, ("day",), tz="Mars/Olympus")


def test_yield_by_policy_robot_and_task_with_a_filter(hist: Session) -> None:
    got = yield_by(hist, WINDOW, ("robot", "policy", "task"), station="L1-ST20")
    want = _raw(hist, "robot_id, policy_version, task", "AND station_id = 'L1-ST20'")
    assert {
        (r.robot_id, r.policy_version, r.task): (r.parts, r.retried, r.first_pass_ok, r.final_good)
        for r in got
    } == want
    # Screwing retries a NOK once, inside the same job: a retried part is still one part.
    assert sum(r.retried for r in got) > 0


def test_yield_by_shift_uses_the_shifts_table(hist: Session) -> None:
    got = {r.shift: r.parts for r in yield_by(hist, WINDOW, ("shift",))}
    shifts = hist.execute(text("SELECT name, starts_at, ends_at FROM shifts")).all()
    jobs = hist.execute(
        text("SELECT ended_at FROM jobs WHERE ended_at >= :a AND ended_at < :b"),
        {"a": WINDOW.start, "b": WINDOW.end},
    ).all()
    want: dict[str | None, int] = {}
    for (t,) in jobs:
        label = next((f"{n} {s:%Y-%m-%d %H:%M}" for n, s, e in shifts if s <= t < e), None)
        want[label] = want.get(label, 0) + 1
    assert got == want
    assert None in got  # the night before the first generated shift belongs to none


def test_a_window_inside_one_hour_reads_raw_rows_only(hist: Session) -> None:
    w = Window(datetime(2026, 3, 9, 10, 5, tzinfo=UTC), datetime(2026, 3, 9, 10, 50, tzinfo=UTC))
    got = yield_by(hist, w, ())
    n = hist.execute(
        text("SELECT count(*) FROM jobs WHERE ended_at >= :a AND ended_at < :b"),
        {"a": w.start, "b": w.end},
    ).scalar()
    assert len(got) == 1 and got[0].parts == n > 0


def test_bad_grouping_and_backwards_window_are_refused() -> None:
    with pytest.raises(QueryError, match="cannot group by colour"):
        yield_by(None, WINDOW, ("colour",))  # type: ignore[arg-type, list-item]
    with pytest.raises(QueryError, match="before it starts"):
        Window(WINDOW.end, WINDOW.start - timedelta(hours=1))


def test_two_proportions_matches_newcombes_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17, 873-890: 56/70 vs 48/80.
    pa, pb, d, low, high, p = two_proportions(48, 80, 56, 70)
    assert (pa, pb) == (0.6, 0.8)
    assert d == pytest.approx(0.2)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    assert 0.005 < p < 0.01


def test_compare_policies_on_recorded_versions(hist: Session) -> None:
    versions = [
        r[0]
        for r in hist.execute(
            text("SELECT DISTINCT policy_version FROM jobs WHERE station_id = 'L1-ST10'")
        )
    ]
    other = "vla-9.9"
    res = compare_policies(hist, WINDOW, "L1-ST10", versions[0], other)
    assert res.p_value is None and "no parts with vla-9.9" in res.verdict
    # The same version split in two halves of the record cannot be "better".
    hist.execute(
        text(
            "UPDATE jobs SET policy_version = 'vla-x' WHERE station_id = 'L1-ST10' "
            "AND job_seq % 2 = 0"
        )
    )
    res = compare_policies(hist, WINDOW, "L1-ST10", versions[0], "vla-x")
    raw = hist.execute(
        text("""SELECT policy_version, count(*), count(*) FILTER (WHERE ok)
        FROM jobs WHERE station_id = 'L1-ST10' AND ended_at >= :a
        AND ended_at < :b GROUP BY 1"""),
        {"a": WINDOW.start, "b": WINDOW.end},
    ).all()
    by = {v: (n, k) for v, n, k in raw}
    assert (res.parts_b, res.ok_b) == by["vla-x"]
    assert res.ci_low is not None and res.ci_high is not None
    assert res.ci_low < res.difference < res.ci_high
