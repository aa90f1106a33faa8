"""``intern line status``: which process serves each station, from the station leases on
record, for a person (table) and a script (JSON); an unreachable database is one line
and exit code 2."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import typer
from click.testing import Result
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cell.cli import line
from cell.record.leases import acquire
from cell.services import free_port


@pytest.fixture
def url(make_database: Callable[[], str]) -> str:
    """A database where one process serves ST10 and ST99 (a station of another line
    config) and another's ST20 lease ran out; ST30 has no lease."""
    url = make_database()
    engine = create_engine(url)
    with Session(engine) as s:
        acquire(s, "host-a:4242:0a1b2c", ["ST10", "ST99"], 60.0)
        acquire(s, "host-b:77:ffee00", ["ST20"], 60.0)
        s.execute(
            text(
                "UPDATE station_leases SET expires_at = clock_timestamp() - interval '90 seconds'"
                " WHERE station_id = 'ST20'"
            )
        )
        s.commit()
    engine.dispose()
    return url


def _cli(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Callable[..., Result]:
    monkeypatch.setenv("INTERN_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "200")  # tables unfolded, as on a wide terminal
    app = typer.Typer()
    line.register(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_status_shows_who_serves_each_station_of_the_line(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = _cli(monkeypatch, url)("line", "status")
    assert res.exit_code == 0, res.output
    rows = {ln.split()[0]: ln for ln in res.stdout.splitlines() if ln.strip().startswith("ST")}
    assert list(rows) == ["ST10", "ST20", "ST30", "ST99"]  # the line's, then the others
    assert "host-a:4242:0a1b2c" in rows["ST10"] and " in " in rows["ST10"]
    assert "nobody (last: host-b:77:ffee00)" in rows["ST20"]
    assert "expired 9" in rows["ST20"]  # 90 s and the moments since
    assert "nobody (no lease)" in rows["ST30"]  # a station of the line without a lease
    assert "host-a:4242:0a1b2c" in rows["ST99"]


def test_status_as_json_gives_the_leases_as_recorded(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = _cli(monkeypatch, url)("line", "status", "--format", "json")
    assert res.exit_code == 0, res.output
    got = {row["station_id"]: row for row in json.loads(res.stdout)}
    assert got["ST10"]["served"] is True
    assert got["ST10"]["owner"] == "host-a:4242:0a1b2c"
    assert got["ST10"]["fencing"] == 1
    assert 0 < got["ST10"]["expires_in_s"] <= 60
    assert got["ST20"]["served"] is False and got["ST20"]["expires_in_s"] < 0
    assert got["ST30"]["owner"] is None and got["ST30"]["served"] is False


def test_status_without_a_database_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    res = _cli(monkeypatch, f"postgresql://postgres@127.0.0.1:{free_port()}/none")("line", "status")
    assert res.exit_code == 2
    assert "cannot reach the database" in res.output
    assert "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_run_refuses_a_bad_lease_time_and_leases_without_a_shared_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("INTERN_DATABASE_URL", raising=False)
    monkeypatch.setenv("INTERN_LEASE_S", "0.5")
    app = typer.Typer()
    line.register(app)
    runner = CliRunner()
    res = runner.invoke(app, ["run"])
    assert res.exit_code == 2
    assert "INTERN_LEASE_S" in res.output and "from 2 to 300" in res.output
    monkeypatch.delenv("INTERN_LEASE_S")
    res = runner.invoke(app, ["run", "--leases"])
    assert res.exit_code == 2
    assert "--leases" in res.output and "INTERN_DATABASE_URL" in res.output
