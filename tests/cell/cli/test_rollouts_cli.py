"""``intern policy rollout start|status|stop`` through the whole ``intern`` app, on a
database of their own (the commands commit)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from cell.cli import app
from cell.config import load_line_config, sample_config_path
from cell.record import rollouts as ro
from cell.record.jobs import record_job
from cell.record.rollout_rule import Arm
from cell.record.roster import sync_line
from tests.cell.record.test_rollouts import job_record

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def _job(s: Session, seq: int, version: str, ok: bool = True) -> int:
    at = T0 + timedelta(seconds=seq)
    return record_job(s, job_record("ST10", seq, version, ok, at)).job_id


@pytest.fixture
def db(make_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch) -> str:
    url = make_database()
    monkeypatch.setenv("INTERN_DATABASE_URL", url)
    monkeypatch.setenv("COLUMNS", "200")
    engine = create_engine(url)
    with Session(engine) as s:
        sync_line(s, load_line_config(sample_config_path()))
        _job(s, 1, "v1")
    engine.dispose()
    return url


def intern(*args: str) -> Result:
    return CliRunner().invoke(app, ["policy", "rollout", *args])


def _status(*args: str) -> list[dict[str, object]]:
    result = intern("status", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert isinstance(rows, list)
    return rows


def test_start_status_stop(db: str) -> None:
    started = intern("start", "--station", "ST10", "--candidate", "v2", "--author", "sup-anna")
    assert started.exit_code == 0, started.output
    assert "v2 on 20% of the jobs beside v1" in started.stdout
    (row,) = _status()
    assert (row["station_id"], row["incumbent_version"], row["candidate_version"]) == (
        "ST10",
        "v1",
        "v2",
    )
    assert (row["state"], row["started_by"], row["share"]) == ("running", "sup-anna", 0.2)
    again = intern("start", "--station", "ST10", "--candidate", "v3", "--author", "sup-bo")
    assert again.exit_code == 1
    assert "refused: ST10 already runs rollout" in again.stderr
    stopped = intern("stop", "--station", "ST10", "--reason", "wrong build", "--author", "sup-bo")
    assert stopped.exit_code == 0, stopped.output
    (row,) = _status("--station", "ST10")
    assert (row["state"], row["decided_by"], row["reason"]) == ("stopped", "sup-bo", "wrong build")
    table = intern("status")
    assert table.exit_code == 0 and "ST10" in table.stdout and "stopped" in table.stdout


def test_status_records_the_rules_decision_with_author_system(db: str) -> None:
    engine = create_engine(db)
    with Session(engine) as s:
        rollout = ro.start(s, "ST10", "v2", author="sup-anna").id
        for seq in range(2, 9):
            ro.record_arm(s, rollout, _job(s, seq, "v2", ok=False), Arm.CANDIDATE)
    engine.dispose()
    (row,) = _status("--station", "ST10")
    assert (row["state"], row["decided_by"], row["candidate_jobs"]) == ("rolled_back", "system", 7)
    # The incumbent's one job before the rollout: its reference, too short to decide on.
    assert (row["reference_jobs"], row["reference_fpy"]) == (1, 1.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["start", "--station", "ST10", "--candidate", "v2", "--share", "1.5"], "--share must"),
        (["start", "--station", "ST99", "--candidate", "v2"], "unknown station 'ST99'"),
        (["stop", "--station", "ST99", "--reason", "x"], "unknown station 'ST99'"),
        (["status", "--station", "ST99"], "unknown station 'ST99'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(db: str, args: list[str], message: str) -> None:
    result = intern(*args, *(["--author", "sup-anna"] if args[0] != "status" else []))
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_refusals_exit_1_with_the_reason(db: str) -> None:
    same = intern("start", "--station", "ST10", "--candidate", "v1", "--author", "sup-anna")
    assert same.exit_code == 1 and "v1 already runs at ST10" in same.stderr
    idle = intern("stop", "--station", "ST10", "--reason", "x", "--author", "sup-anna")
    assert idle.exit_code == 1 and "no rollout runs at ST10" in idle.stderr


def test_the_rollout_commands_load_no_torch() -> None:
    code = "import sys, cell.cli.rollouts, cell.record.rollouts; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
