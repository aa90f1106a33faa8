"""The parts list and a part's final state, against independent computations on the raw
rows of the generated history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.orm import Session

from cell.insight.genealogy import PartState, Visit, part_history, part_state
from cell.insight.parts import PartsParams, parts_seen

SINCE = datetime(2026, 3, 9, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("visits", "state"),
    [
        ([("ST10", True, None), ("ST20", True, None)], PartState.OK),
        ([("ST10", False, None), ("ST20", True, None)], PartState.NOK),
        ([("ST10", False, "reworked_ok"), ("ST20", True, None)], PartState.REWORKED),
        ([("ST10", False, "reworked_ok"), ("ST20", False, None)], PartState.NOK),
        ([("ST10", False, "scrapped"), ("ST20", False, None)], PartState.SCRAPPED),
        # The latest pass through a station stands for it.
        ([("ST10", False, None), ("ST10", True, None)], PartState.OK),
        ([("ST10", True, None), ("ST10", False, "reworked_ok")], PartState.REWORKED),
        ([], PartState.OK),
    ],
)
def test_a_parts_final_state(visits: list[tuple[str, bool, str | None]], state: PartState) -> None:
    assert part_state(Visit(*v) for v in visits) == state


def test_parts_seen_match_the_raw_rows(hist: Session) -> None:
    got = parts_seen(hist, SINCE, limit=10_000)
    listed = hist.execute(
        text(
            "SELECT part_id, count(*), array_agg(station_id ORDER BY started_at, id), "
            "min(started_at), max(ended_at), count(*) FILTER (WHERE NOT ok) FROM jobs "
            "WHERE part_id IN (SELECT part_id FROM jobs WHERE ended_at >= :since) "
            "GROUP BY part_id"
        ),
        {"since": SINCE},
    ).all()
    want = {p: (n, tuple(route), first, last, nok) for p, n, route, first, last, nok in listed}
    assert len(got) == len(want) > 100
    assert {
        r.part_id: (r.jobs, r.stations, r.first_seen, r.last_seen, r.nok_jobs) for r in got
    } == want
    assert [r.first_seen for r in got] == sorted(r.first_seen for r in got)
    assert any(len(set(r.stations)) > 1 for r in got), "parts of the history visit several stations"
    # The row's state is the part's own, as its genealogy tells it.
    for row in got[:: max(1, len(got) // 20)]:
        history = part_history(hist, row.part_id)
        assert history is not None and history.state == row.state
        assert history.route == row.stations


def test_parts_seen_filters_by_station_nok_and_limit(hist: Session) -> None:
    station = hist.execute(text("SELECT station_id FROM jobs LIMIT 1")).scalar_one()
    nok_at = set(
        hist.scalars(
            text(
                "SELECT DISTINCT part_id FROM jobs WHERE ended_at >= :since AND NOT ok "
                "AND station_id = :st"
            ),
            {"since": SINCE, "st": station},
        )
    )
    got = parts_seen(hist, SINCE, station=station, nok=True, limit=10_000)
    assert {r.part_id for r in got} == nok_at and nok_at
    assert all(station in r.stations and r.nok_jobs >= 1 for r in got)
    # The history's technicians answered every NOK: reworked or scrapped.
    assert {r.state for r in parts_seen(hist, SINCE, nok=True, limit=10_000)} == {
        PartState.SCRAPPED,
        PartState.REWORKED,
    }
    newest = parts_seen(hist, SINCE, limit=5)
    everyone = parts_seen(hist, SINCE, limit=10_000)
    assert len(newest) == 5
    assert min(r.last_seen for r in newest) >= sorted(r.last_seen for r in everyone)[-5]
    assert parts_seen(hist, datetime(2030, 1, 1, tzinfo=UTC)) == []


def test_a_part_id_the_record_cannot_hold_is_simply_not_on_record(hist: Session) -> None:
    assert part_history(hist, "X" * 257) is None
    assert part_history(hist, "DC1\x00") is None


@pytest.mark.parametrize(
    ("since", "start"),
    [
        ("8h", datetime(2026, 3, 9, 4, tzinfo=UTC)),
        ("1.5d", datetime(2026, 3, 8, 0, tzinfo=UTC)),
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01T06:00+01:00", datetime(2026, 3, 1, 5, tzinfo=UTC)),
    ],
)
def test_since_is_a_time_or_a_span_back_from_now(since: str, start: datetime) -> None:
    now = datetime(2026, 3, 9, 12, tzinfo=UTC)
    assert PartsParams.model_validate({"since": since}).start(now) == start
    assert PartsParams().start(now) == now - timedelta(days=7)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "yesterday"}, r"neither a time \(2026-03-01T06:00\) nor a span back"),
        ({"since": "8"}, "neither a time"),
        ({"since": "99999w"}, "from 0 to 3660 days"),
        ({"since": "1969-12-31"}, "a time from 1970-01-01 to before 2200-01-01"),
        ({"limit": 0}, "greater than or equal to 1"),
        ({"station": "ST 10"}, "should match pattern"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_parts_params_say_why(params: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PartsParams.model_validate(params)
