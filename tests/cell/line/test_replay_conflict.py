"""Outbox replay onto a record that already holds some of its job keys: identical entries
are harmless repeats, different ones (another part, another outcome) are quarantined with
both versions and an alert, and every other entry still lands."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from cell.config import load_line_config, sample_config_path
from cell.line.durability import Recorder
from cell.line.outbox import Outbox
from cell.record import models as m
from cell.record.engine import make_engine, make_sessionmaker
from cell.record.jobs import JobRecord, record_job
from cell.record.roster import sync_line

NOW = datetime.now(UTC)


def _rec(seq: int, part: str, ok: bool = True) -> JobRecord:
    return JobRecord(
        station_id="ST10",
        epoch=0,
        job_seq=seq,
        part_id=part,
        program_no=1,
        robot_id="R1",
        task="nut_install",
        started_at=NOW,
        ended_at=NOW,
        cycle_time_ms=70000,
        ok=ok,
        error_code=0 if ok else 204,
    )


def test_replay_conflicts_are_quarantined_with_an_alert_and_nothing_is_lost(
    make_database: Callable[[], str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = make_database()
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with sessions() as s:
        sync_line(s, load_line_config(sample_config_path()))
        for seq in range(1, 6):  # what another writer recorded first
            record_job(s, _rec(seq, f"P-{seq}"))
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.put(_rec(2, "P-2"), None)  # identical: a harmless repeat
    outbox.put(_rec(3, "P-X"), None)  # another part under the key
    outbox.put(_rec(4, "P-4", ok=False), "nok")  # another outcome
    for seq in range(6, 11):
        outbox.put(_rec(seq, f"P-{seq}"), None)
    recorder = Recorder(sessions, outbox)
    with caplog.at_level(logging.WARNING, logger="cell.line.durability"):
        assert recorder.replay() == 8
    assert recorder.pending() == 0

    with Session(create_engine(url)) as s:
        assert s.scalar(select(func.count()).select_from(m.Job)) == 10
        parts = {seq: part for seq, part in s.execute(select(m.Job.job_seq, m.Job.part_id))}
        assert parts[3] == "P-3" and parts[4] == "P-4"  # the record stands
        conflicts = {c.job_seq: c for c in s.scalars(select(m.ReplayConflict))}
        assert sorted(conflicts) == [3, 4]
        assert conflicts[3].differs == ["part_id"]
        assert conflicts[3].recorded["part_id"] == "P-3"
        assert conflicts[3].replayed["part_id"] == "P-X"
        assert set(conflicts[4].differs) == {"ok", "error_code"}
        assert conflicts[4].replayed["ok"] is False and conflicts[4].recorded["ok"] is True
        alerts = s.scalars(select(m.Alert).order_by(m.Alert.id)).all()
        assert [a.kind for a in alerts] == ["replay_conflict", "replay_conflict"]
        assert {c.alert_id for c in conflicts.values()} == {a.id for a in alerts}
        first = alerts[0].message
        assert "ST10" in first and "JobSeq 3" in first and "P-X" in first and "P-3" in first
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("replay conflict" in w and "JobSeq 3" in w for w in warned)

    # The same entry replayed again (an interrupted replay repeated) is kept once.
    outbox.put(_rec(3, "P-X"), None)
    assert recorder.replay() == 1
    with Session(create_engine(url)) as s:
        assert s.scalar(select(func.count()).select_from(m.ReplayConflict)) == 2
        assert s.scalar(select(func.count()).select_from(m.Alert)) == 2
    outbox.close()
    engine.dispose()
