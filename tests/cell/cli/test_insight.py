"""The analytics, roster and alert commands, run with typer's CliRunner on an app built
with ``register``, against the generated history."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cell import insight as an
from cell.cli import register
from cell.config import load_line_config, sample_config_path
from cell.record import models as m
from cell.record.roster import sync_line

WINDOW = ["--start", "2026-03-08T03:00:00", "--end", "2026-03-09T21:00:00"]


@pytest.fixture
def cli(history_url: str, monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    monkeypatch.setenv("INTERN_DATABASE_URL", history_url)
    monkeypatch.setenv("COLUMNS", "200")  # tables unfolded, as on a wide terminal
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_yield_json_matches_the_query(cli, history_url: str) -> None:  # type: ignore[no-untyped-def]
    res = cli("yield", *WINDOW, "--by", "station", "--by", "policy", "--format", "json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    engine = create_engine(history_url)
    with Session(engine) as s:
        want = an.yield_by(
            s,
            an.Window(datetime(2026, 3, 8, 3, tzinfo=UTC), datetime(2026, 3, 9, 21, tzinfo=UTC)),
            ("station", "policy"),
        )
    engine.dispose()
    assert [
        (r["station_id"], r["policy_version"], r["parts"], r["first_pass_yield"]) for r in got
    ] == [(r.station_id, r.policy_version, r.parts, r.first_pass_yield) for r in want]


def test_csv_and_table_formats(cli) -> None:  # type: ignore[no-untyped-def]
    res = cli("pareto", *WINDOW, "--format", "csv")
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert rows[0].keys() >= {"error_code", "name", "count", "cumulative"}
    assert float(rows[-1]["cumulative"]) == pytest.approx(1.0)
    table = cli("spc", *WINDOW, "--station", "L1-ST10")
    assert table.exit_code == 0 and "Cpk" in table.output and "L1-ST10" in table.output
    chart = cli(
        "spc",
        *WINDOW,
        "--station",
        "L1-ST10",
        "--side",
        "left",
        "--position",
        "2",
        "--points",
        "20",
        "--format",
        "json",
    )
    assert chart.exit_code == 0 and len(json.loads(chart.stdout)["points"]) == 20
    for cmd in (
        ["oee", *WINDOW],
        ["compare", *WINDOW, "--station", "L1-ST20", "--a", "vla-1.0", "--b", "vla-1.1"],
    ):
        out = cli(*cmd)
        assert out.exit_code == 0, out.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["yield", "--by", "colour"], "--by"),
        (["yield", "--days", "-1"], "--days: Input should be greater than 0"),
        (["yield", "--start", "2026-03-09", "--end", "2026-03-08"], "end must be after start"),
        (["yield", "--tz", "Mars/Olympus"], "unknown time zone"),
        (["pareto", "--by", "shoe"], "choose code or position"),
        (["spc", "--side", "left"], "needs --station, --side and --position"),
        (["part", "NOPE-1"], "no part 'NOPE-1' on record"),
        (["assign", "--robot", "R1", "--reason", "x", "--author", "a"], "exactly one of"),
    ],
)
def test_bad_input_is_a_clear_error(cli, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    res = cli(*args)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output


def test_roster_assign_and_alert_steps(cli, history_url: str) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(history_url)
    with Session(engine) as s:
        sync_line(s, load_line_config(sample_config_path()))
        job = s.execute(text("SELECT id FROM jobs WHERE NOT ok LIMIT 1")).scalar_one()
        alert = m.Alert(
            station_id="ST10", job_id=job, kind="nok", error_code=201, message="cross thread"
        )
        s.add(alert)
        s.commit()
        alert_id = alert.id
    try:
        refused = cli(
            "assign",
            "--robot",
            "R3",
            "--station",
            "ST10",
            "--reason",
            "cover",
            "--author",
            "sup-anna",
        )
        assert refused.exit_code == 1 and "R3 has no skill for nut_install" in refused.output
        done = cli(
            "assign",
            "--robot",
            "R1",
            "--maintenance",
            "--reason",
            "gripper",
            "--author",
            "sup-anna",
            "--format",
            "json",
        )
        assert done.exit_code == 0, done.output
        r1 = next(e for e in json.loads(done.stdout) if e["robot_id"] == "R1")
        assert r1["station_id"] is None and r1["author"] == "sup-anna"
        early = cli("alerts", "clear", str(alert_id), "--author", "tech-bo")
        assert early.exit_code == 1 and "acknowledge" in early.output
        for step in (["ack"], ["rework", "--author", "tech-bo", "reworked_ok"], ["clear"]):
            args = ["alerts", step[0], str(alert_id), *step[1:]]
            if "--author" not in args:
                args += ["--author", "tech-bo"]
            res = cli(*args)
            assert res.exit_code == 0, res.output
        listed = cli("alerts", "list", "--format", "json")
        assert alert_id not in [a["id"] for a in json.loads(listed.stdout)]
        with Session(engine) as s:
            audit = s.execute(
                text("SELECT actor, action FROM audit_log WHERE role = 'cli' ORDER BY id")
            ).all()
        assert ("sup-anna", "assign.maintenance") in audit and ("tech-bo", "alert.clear") in audit
    finally:
        with Session(engine) as s:  # leave the shared history as the other tests expect
            s.execute(text("DELETE FROM alerts WHERE id = :i"), {"i": alert_id})
            s.execute(text("UPDATE jobs SET rework = NULL WHERE id = :j"), {"j": job})
            s.commit()
        engine.dispose()


def test_history_generate_refuses_a_second_run_and_api_serve_checks_its_bind(
    cli, make_database, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    url = make_database()
    monkeypatch.setenv("INTERN_DATABASE_URL", url)
    ok = cli("history", "generate", "--stations", "2", "--days", "1", "--end", "2026-01-02")
    assert ok.exit_code == 0, ok.output
    assert "jobs" in ok.output and "GiB" in ok.output
    again = cli("history", "generate", "--stations", "2", "--days", "1", "--end", "2026-01-02")
    assert again.exit_code == 2 and "already have jobs" in again.output
    bad = cli("history", "generate", "--days", "0")
    assert bad.exit_code == 2 and "--days" in bad.output
    monkeypatch.setenv("INTERN_API_ANONYMOUS_READ", "true")
    wide = cli("api", "serve", "--host", "0.0.0.0")
    assert wide.exit_code == 2 and "INTERN_API_ANONYMOUS_READ=false" in wide.output
    monkeypatch.setenv("INTERN_API_ANONYMOUS_READ", "false")
    nobody = cli("api", "serve", "--host", "0.0.0.0")
    assert nobody.exit_code == 2 and "no API users yet" in nobody.output
    added = cli("api", "user-add", "boss", "--role", "admin")
    assert added.exit_code == 0 and "token:" in added.output
    wrong = cli("api", "user-add", "x", "--role", "emperor")
    assert wrong.exit_code == 2 and "unknown role" in wrong.output


def _line_in_zone(tmp_path: Path, zone: str) -> Path:
    """The sample line config, in time zone ``zone``."""
    data = yaml.safe_load(sample_config_path().read_text())
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump(data | {"timezone": zone}))
    return path


def test_a_time_without_offset_is_read_in_the_lines_zone(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    berlin = _line_in_zone(tmp_path, "Europe/Berlin")  # UTC+1 in March
    local = ["--start", "2026-03-08T07:00", "--end", "2026-03-09T07:30", "--config", str(berlin)]
    utc = ["--start", "2026-03-08T06:00Z", "--end", "2026-03-09T06:30+00:00"]
    naive_utc = ["--start", "2026-03-08T07:00", "--end", "2026-03-09T07:30"]  # sample: UTC

    def parts(args: list[str]) -> list[tuple[str, int]]:
        res = cli("yield", *args, "--format", "json")
        assert res.exit_code == 0, res.output
        return [(r["station_id"], r["parts"]) for r in json.loads(res.stdout)]

    assert parts(local) == parts(utc)
    assert parts(local) != parts(naive_utc)  # the hour's difference shows
    bad = cli("yield", "--start", "8 March", "--config", str(berlin))
    assert bad.exit_code == 2 and "--start" in bad.output and "ISO 8601" in bad.output


def test_a_line_config_with_an_unknown_zone_is_refused(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    res = cli("yield", "--config", str(_line_in_zone(tmp_path, "Mars/Olympus")))
    assert res.exit_code == 2 and "timezone" in res.output and "Mars/Olympus" in res.output


@pytest.mark.parametrize(
    "args, named",
    [
        (["yield", "--station", "ST99"], "unknown station 'ST99'"),
        (["oee", "--station", "ST99"], "unknown station 'ST99'"),
        (["yield", "--robot", "R99"], "unknown robot 'R99'"),
        (["yield", "--task", "welding"], "unknown task 'welding'"),
        (["alerts", "list", "--station", "ST99"], "unknown station 'ST99'"),
    ],
)
def test_an_unknown_name_exits_2_listing_the_known_ones(cli, args: list[str], named: str) -> None:  # type: ignore[no-untyped-def]
    res = cli(*args)
    assert res.exit_code == 2, res.output
    assert named in res.output
    # The line's and the record's names alike.
    known = {"station": "L1-ST10", "robot": "L1-R1", "task": "nut_install"}[named.split()[1]]
    assert known in res.output


def test_alerts_shows_the_open_queue_and_list_closed_the_cleared(cli, history_url: str) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(history_url)
    with Session(engine) as s:
        job = s.execute(text("SELECT id FROM jobs WHERE NOT ok LIMIT 1")).scalar_one()
        alert = m.Alert(
            station_id="L1-ST10", job_id=job, part_id="P-77", kind="nok", message="crooked start"
        )
        s.add(alert)
        s.commit()
        alert_id = alert.id
    try:
        queue = cli("alerts")
        assert queue.exit_code == 0, queue.output
        assert "Open alerts" in queue.output and "crooked start" in queue.output
        assert str(alert_id) in queue.output and "Usage" not in queue.output
        assert cli("alerts", "--station", "L1-ST20").output.strip() == "no open alerts at L1-ST20"
        for step in (["ack"], ["rework", "reworked_ok"], ["clear"]):
            res = cli("alerts", step[0], str(alert_id), *step[1:], "--author", "tech-bo")
            assert res.exit_code == 0, res.output
        assert "crooked start" not in cli("alerts").output
        closed = cli("alerts", "list", "--closed", "--days", "1", "--format", "json")
        assert closed.exit_code == 0, closed.output
        mine = next(a for a in json.loads(closed.stdout) if a["id"] == alert_id)
        assert mine["cleared_by"] == "tech-bo" and mine["rework"] == "reworked_ok"
        table = cli("alerts", "list", "--closed", "--days", "1", "--station", "L1-ST10")
        assert "Cleared by" in table.output and "crooked start" in table.output
        long_ago = cli("alerts", "list", "--closed", "--end", "2026-01-01")
        assert long_ago.output.startswith("no alerts cleared from 2025-12-25 00:00")
    finally:
        with Session(engine) as s:
            s.execute(text("DELETE FROM alerts WHERE id = :i"), {"i": alert_id})
            s.execute(text("UPDATE jobs SET rework = NULL WHERE id = :j"), {"j": job})
            s.commit()
        engine.dispose()
