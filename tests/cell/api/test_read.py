"""Read endpoints answer the analytics queries; bad input is a 422 with a message."""

from dataclasses import asdict
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from cell import insight as an
from tests.cell.api.conftest import BASE, END, ApiWorld, auth

W = {"start": "2026-03-09T02:30:00Z", "end": END.isoformat()}


def _window() -> an.Window:
    return an.Window(datetime(2026, 3, 9, 2, 30, tzinfo=UTC), END)


def test_openapi_lists_the_endpoints(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for p in (
        "/api/yield",
        "/api/pareto",
        "/api/spc",
        "/api/spc/chart",
        "/api/cycle-time",
        "/api/oee",
        "/api/compare",
        "/api/parts/{part_id}",
        "/api/shift-report",
        "/api/roster",
        "/api/assign",
        "/api/alerts/{alert_id}/ack",
    ):
        assert p in paths


def test_yield_endpoint_matches_the_query(client: TestClient, world: ApiWorld) -> None:
    res = client.get("/api/yield", params=W | {"by": ["station", "shift"]})
    assert res.status_code == 200
    with world.session() as s:
        want = an.yield_by(s, _window(), ("station", "shift"))
    assert len(res.json()) == len(want) > 5
    got = {(r["station_id"], r["shift"]): (r["parts"], r["first_pass_yield"]) for r in res.json()}
    assert got == {(r.station_id, r.shift): (r.parts, r.first_pass_yield) for r in want}


@pytest.mark.parametrize(
    "path, params, check",
    [
        ("/api/pareto", {}, lambda d: d[0]["cumulative"] <= d[-1]["cumulative"] == 1.0),
        (
            "/api/pareto",
            {"by": "position", "station": "L1-ST10"},
            lambda d: all(r["station_id"] == "L1-ST10" for r in d),
        ),
        (
            "/api/spc",
            {"station": "L1-ST20", "measure": "angle"},
            lambda d: len(d) == 4 and d[0]["ok_only"]["cpk"] > 0,
        ),
        (
            "/api/spc/chart",
            {"station": "L1-ST10", "side": "left", "position": 1, "points": 30},
            lambda d: len(d["points"]) == 30 and d["lcl"] < d["center"] < d["ucl"],
        ),
        ("/api/cycle-time", {"station": "L1-ST50"}, lambda d: d[0]["p50_s"] < d[0]["takt_s"]),
        ("/api/oee", {}, lambda d: all(0 < r["availability"] <= 1 for r in d) and len(d) >= 5),
        (
            "/api/compare",
            {"station": "L1-ST10", "a": "vla-1.0", "b": "vla-2.0"},
            lambda d: "no parts with vla-2.0" in d["verdict"],
        ),
    ],
)
def test_read_endpoints(client: TestClient, path: str, params: dict, check) -> None:  # type: ignore[no-untyped-def]
    res = client.get(path, params=W | params)
    assert res.status_code == 200, res.text
    assert check(res.json())


def test_part_and_shift_report(client: TestClient, world: ApiWorld) -> None:
    with world.session() as s:
        part = s.execute(text("SELECT part_id FROM jobs LIMIT 1")).scalar_one()
        want = an.shift_report(s, _window().start, END)
    res = client.get(f"/api/parts/{part}")
    assert res.status_code == 200 and res.json()["part_id"] == part
    assert client.get("/api/parts/NOPE-1").json() == {"error": "no part 'NOPE-1' on record"}
    rep = client.get("/api/shift-report", params=W).json()
    assert rep["stations"] == [
        asdict(st) | {"nok_pareto": [list(x) for x in st.nok_pareto]} for st in want.stations
    ]


@pytest.mark.parametrize(
    "path, params, field",
    [
        ("/api/yield", {"by": "colour"}, "query.by"),
        ("/api/yield", {"days": "-1"}, "query.days"),
        ("/api/yield", {"start": "yesterday"}, "query.start"),
        ("/api/yield", {"start": "2026-03-09T00:00:00Z", "end": "2026-03-08T00:00:00Z"}, "query"),
        ("/api/pareto", {"station": "ST10; DROP TABLE jobs"}, "query.station"),
        ("/api/spc/chart", {"station": "L1-ST10", "side": "up", "position": 1}, "query.side"),
        ("/api/spc/chart", {"station": "L1-ST10", "side": "left", "position": 0}, "query.position"),
        ("/api/shift-report", {}, "query.start"),
        ("/api/yield", {"bogus": "1"}, "query.bogus"),
    ],
)
def test_malformed_reads_get_422_with_the_field(
    client: TestClient, path: str, params: dict, field: str
) -> None:
    res = client.get(path, params=params)
    assert res.status_code == 422
    body = res.json()
    assert body["error"].startswith("invalid request")
    assert any(d["field"].startswith(field) for d in body["detail"]), body
    assert "Traceback" not in res.text


def test_query_errors_are_400_json(client: TestClient) -> None:
    res = client.get("/api/yield", params=W | {"tz": "Mars/Olympus"})
    assert res.status_code == 400 and "unknown time zone" in res.json()["error"]
    res = client.get(
        "/api/spc/chart", params=W | {"station": "L1-ST50", "side": "left", "position": 1}
    )
    assert res.status_code == 400 and "too few" in res.json()["error"]


def test_reads_need_a_token_when_anonymous_reads_are_off(world: ApiWorld) -> None:
    from cell.api import ApiSettings, create_app

    app = create_app(ApiSettings(database_url=world.url, anonymous_read=False))
    with TestClient(app, base_url=BASE) as c:
        res = c.get("/api/roster")
        assert res.status_code == 401 and "token" in res.json()["error"]
        assert c.get("/api/roster", headers=auth(world, "viewer")).status_code == 200
        bad = c.get("/api/roster", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401 and bad.json() == {"error": "unknown token"}


def test_non_loopback_bind_needs_tokens() -> None:
    from pydantic import ValidationError

    from cell.api import ApiSettings

    with pytest.raises(ValidationError, match="not loopback"):
        ApiSettings(database_url="postgresql+psycopg://x/y", host="0.0.0.0")
    ApiSettings(database_url="postgresql+psycopg://x/y", host="0.0.0.0", anonymous_read=False)


def test_live_line_without_a_running_orchestrator(client: TestClient, world: ApiWorld) -> None:
    res = client.get("/api/live")
    assert res.status_code == 200, res.text
    tiles = {t["station_id"]: t for t in res.json()["stations"]}
    with world.session() as s:
        stations = {r for (r,) in s.execute(text("SELECT id FROM stations"))}
    assert set(tiles) == stations
    hist = tiles["L1-ST10"]
    assert not hist["reporting"] and hist["plc_connected"] is None  # nothing reports it
    assert 0 < len(hist["results"]) <= 6
    assert hist["results"][0]["ended_at"] >= hist["results"][-1]["ended_at"]  # newest first
    assert tiles["ST20"]["robot_id"] in ("R2", None)


def test_job_traces(client: TestClient, world: ApiWorld) -> None:
    with world.session() as s:
        job_id = s.execute(
            text("SELECT job_id FROM fastener_results WHERE NOT ok AND length(trace) > 0 LIMIT 1")
        ).scalar_one()
    res = client.get(f"/api/jobs/{job_id}/traces")
    assert res.status_code == 200
    bad = [f for f in res.json()["fasteners"] if not f["ok"]]
    assert bad and len(bad[0]["angle"]) == len(bad[0]["torque"]) > 2
    assert bad[0]["torque_min_nm"] < bad[0]["torque_max_nm"]
    assert client.get("/api/jobs/999999999/traces").json() == {
        "error": "no job 999999999 on record"
    }
