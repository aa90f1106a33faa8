"""``intern part`` and ``intern parts``, run with typer's CliRunner on an app built with
``register``, against the generated history."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable

import pytest
import typer
from click.testing import Result
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cell.cli import register
from cell.cli.parts import shown, typed
from tests.conftest import rolled_back_session

SINCE = ["--since", "2026-03-09T12:00"]


@pytest.fixture
def cli(history_url: str, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    monkeypatch.setenv("INTERN_DATABASE_URL", history_url)
    monkeypatch.setenv("COLUMNS", "200")  # tables unfolded, as on a wide terminal
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_parts_lists_each_part_with_its_route_and_state(
    cli: Callable[..., Result], history_url: str
) -> None:
    res = cli("parts", *SINCE, "--limit", "50", "--format", "json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert len(got) == 50
    assert set(got[0]) == {
        "part_id",
        "first_seen",
        "last_seen",
        "stations",
        "jobs",
        "nok_jobs",
        "state",
    }
    engine = create_engine(history_url)
    with Session(engine) as s:
        for row in got[:5]:
            route = s.execute(
                text(
                    "SELECT array_agg(station_id ORDER BY started_at, id) FROM jobs "
                    "WHERE part_id = :p"
                ),
                {"p": row["part_id"]},
            ).scalar_one()
            assert row["stations"] == route
    engine.dispose()
    nok = json.loads(cli("parts", *SINCE, "--nok", "--format", "json").stdout)
    assert nok and all(r["nok_jobs"] >= 1 and r["state"] != "ok" for r in nok)
    table = cli("parts", *SINCE, "--nok", "--limit", "3")
    assert table.exit_code == 0 and nok[-1]["part_id"] in table.output
    rows = list(csv.DictReader(io.StringIO(cli("parts", *SINCE, "--format", "csv").stdout)))
    assert rows and " > " in rows[0]["stations"]


def test_part_shows_the_route_in_order_with_fasteners_and_rework(
    cli: Callable[..., Result], history_url: str
) -> None:
    with rolled_back_session(history_url) as s:
        part_id = s.execute(
            text("SELECT part_id FROM jobs WHERE rework IS NOT NULL ORDER BY id LIMIT 1")
        ).scalar_one()
    doc = json.loads(cli("part", part_id, "--format", "json").stdout)
    assert doc["part_id"] == part_id and doc["state"] in ("reworked", "scrapped")
    assert doc["route"] == [j["station_id"] for j in doc["jobs"]]
    assert [j["started_at"] for j in doc["jobs"]] == sorted(j["started_at"] for j in doc["jobs"])
    table = cli("part", part_id)
    assert table.exit_code == 0, table.output
    assert f"{part_id}: {doc['state']}, route {' > '.join(doc['route'])}" in table.output
    reworked = next(j for j in doc["jobs"] if j["rework"])
    assert reworked["rework"] in table.output
    if any(j["fasteners"] for j in doc["jobs"]):
        assert " OK" in table.output and "/" in table.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["part", "NOPE-1"], "no part 'NOPE-1' on record"),
        (["part", "X" * 300], "on record"),
        (
            ["parts", "--since", "yesterday"],
            "--since: 'yesterday' is not an ISO 8601 time, e.g. 2026-03-01T06:00 (the line's "
            "time zone) or 2026-03-01T06:00+01:00; or a span back from now: 30m, 8h, 2d, 1w",
        ),
        (["parts", "--since", "99999w"], "--since: Value error, a span back from now is from 0"),
        (["parts", "--limit", "0"], "--limit: Input should be greater than or equal to 1"),
        (["parts", "--station", "ST 10"], "--station: String should match pattern"),
        (["parts", "--station", "ST99"], "unknown station 'ST99'; known stations: L1-ST10"),
        (["parts", "--since", "2026-13-01"], "--since: '2026-13-01' is not an ISO 8601 time"),
    ],
)
def test_bad_input_is_a_clear_error(
    cli: Callable[..., Result], args: list[str], message: str
) -> None:
    res = cli(*args)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output


def test_a_separator_is_shown_by_name_and_may_be_typed_so() -> None:
    code = "\x1d0109501101020917\x1d21[b]A[/]"
    assert shown(code) == "<GS>0109501101020917<GS>21[b]A[/]"
    assert typed(shown(code)) == code
