"""``GET /api/parts`` lists the parts seen; ``GET /api/parts/{part_id}`` finds a part under
its code as recorded, separators, other scripts and slashes included."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete

from cell.insight.parts import parts_seen
from cell.record import models as m
from tests.cell.api.conftest import ApiWorld

SINCE = "2026-03-09T12:00:00Z"


def test_parts_endpoint_matches_the_query(client: TestClient, world: ApiWorld) -> None:
    res = client.get("/api/parts", params={"since": SINCE, "limit": 20})
    assert res.status_code == 200, res.text
    with world.session() as s:
        want = parts_seen(s, datetime(2026, 3, 9, 12, tzinfo=UTC), limit=20)
    got = [(r["part_id"], r["stations"], r["jobs"], r["nok_jobs"], r["state"]) for r in res.json()]
    assert got == [(r.part_id, list(r.stations), r.jobs, r.nok_jobs, r.state.value) for r in want]
    assert len(want) == 20
    nok = client.get("/api/parts", params={"since": SINCE, "nok": True}).json()
    assert nok and all(r["nok_jobs"] >= 1 for r in nok)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "yesterday"}, "neither a time"),
        ({"since": "99999w"}, "from 0 to 3660 days"),
        ({"limit": 0}, "greater than or equal to 1"),
        ({"station": "ST 10"}, "should match pattern"),
    ],
)
def test_bad_parts_queries_are_a_422_that_says_why(
    client: TestClient, params: dict[str, object], message: str
) -> None:
    res = client.get("/api/parts", params=params)
    assert res.status_code == 422 and message in res.text


@pytest.fixture
def plant_code(world: ApiWorld) -> Iterator[str]:
    code = "\x1d0109501101020917\x1d21AB/12 Ä鋳"
    with world.session() as s:
        s.add(m.Part(part_id=code))
        s.commit()
    yield code
    with world.session() as s:
        s.execute(delete(m.Part).where(m.Part.part_id == code))
        s.commit()


def test_a_part_is_found_under_its_code_as_recorded(client: TestClient, plant_code: str) -> None:
    res = client.get(f"/api/parts/{quote(plant_code, safe='')}")
    assert res.status_code == 200, res.text
    assert res.json()["part_id"] == plant_code
    too_long = client.get(f"/api/parts/{'X' * 257}")
    assert too_long.status_code == 422
