"""Each job's episode on record: a row written with its job (directly or replayed from the
outbox), listed with the job's rework label, and the retention rule that prunes them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cell.config import load_line_config, sample_config_path
from cell.insight.genealogy import part_history
from cell.line.drafts import JobDraft
from cell.line.durability import Recorder
from cell.line.outbox import Outbox
from cell.record import models as m
from cell.record.engine import make_engine, make_sessionmaker
from cell.record.episodes import (
    EpisodeFilter,
    EpisodeRow,
    find_episodes,
    kept_share,
    mark_pruned,
    prune_plan,
)
from cell.record.jobs import JobRecord, record_job
from cell.record.roster import sync_line
from robot.job_episodes import EpisodeKeeper, EpisodeStore
from robot.jobs import JobSpec, Task
from robot.skills import run_job
from tests.robot.test_skills import _spec

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _job(store: Path, seq: int, difficulty: float = 1.0) -> JobRecord:
    """A job run by the real runner on the simulator with its episode kept in ``store``,
    turned into the record the cell writes."""
    draft = JobDraft("ST10", 0, seq, f"P-{seq}", 1, NOW + timedelta(minutes=seq))
    base = _spec(Task.NUT_INSTALL, seed=seq, difficulty=difficulty)
    spec: JobSpec = base.model_copy(update={"job_key": draft.key, "station_id": "ST10"})
    keeper = EpisodeKeeper(EpisodeStore(store))
    outcome = keeper.keep(spec, run_job(spec, tape=keeper.tape(spec)))
    assert outcome.episode is not None
    return draft.result(
        outcome,
        task="nut_install",
        recipe_id=None,
        attempt=1,
        ended_at=draft.started_at + timedelta(seconds=60),
    )


def _sessions(url: str) -> Callable[[], Session]:
    sessions = make_sessionmaker(make_engine(url))
    with sessions() as s:
        sync_line(s, load_line_config(sample_config_path()))
    return sessions


def test_a_recorded_job_has_its_episode_row_once(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    sessions = _sessions(make_database())
    rec = _job(tmp_path, 1)
    recorder = Recorder(sessions, Outbox(tmp_path / "outbox.sqlite3"))
    assert recorder.record(rec, None) == "db"
    with sessions() as s:
        assert record_job(s, rec).created is False  # a repeat adds no second row
        (row,) = find_episodes(s, EpisodeFilter())
        assert rec.episode is not None
        assert (row.job_key, row.path, row.frames, row.bytes) == (
            "ST10:0:1",
            rec.episode.path,
            rec.episode.frames,
            rec.episode.bytes,
        )
        assert row.ok is rec.ok and row.policy_version == "expert" and row.part_id == "P-1"
        assert row.attempt == rec.attempt == 1
        assert (tmp_path / row.path / "episode.json").is_file()


def test_a_job_replayed_from_the_outbox_brings_its_episode_row(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    sessions = _sessions(make_database())
    recorder = Recorder(sessions, Outbox(tmp_path / "outbox.sqlite3"), online=False)
    recs = [_job(tmp_path, seq) for seq in (1, 2)]
    assert [recorder.record(r, None) for r in recs] == ["outbox", "outbox"]
    recorder.go_online()
    assert recorder.replay() == 2
    with sessions() as s:
        rows = find_episodes(s, EpisodeFilter())
        assert [r.job_key for r in rows] == ["ST10:0:1", "ST10:0:2"]
        assert [r.path for r in rows] == [r.episode.path for r in recs if r.episode]
        # Job and episode commit together: every episode row has its job and vice versa.
        assert s.scalar(select(func.count()).select_from(m.Episode)) == 2


def test_the_list_filters_and_carries_the_rework_label(db_session: Session) -> None:
    sync_line(db_session, load_line_config(sample_config_path()))
    for seq, ok in ((1, True), (2, False), (3, True)):
        rec = JobRecord.model_validate(
            {
                "station_id": "ST10",
                "epoch": 0,
                "job_seq": seq,
                "part_id": f"P-{seq}",
                "program_no": 1,
                "task": "nut_install",
                "policy_version": "v1",
                "started_at": NOW,
                "ended_at": NOW + timedelta(minutes=seq),
                "cycle_time_ms": 60000,
                "ok": ok,
                "error_code": 0 if ok else 204,
                "episode": {"path": f"ST10/ST10_0_{seq}", "frames": 900, "bytes": 1000 * seq},
            }
        )
        record_job(db_session, rec)
    job = db_session.scalars(select(m.Job).where(m.Job.job_seq == 2)).one()
    job.rework = "scrapped"
    db_session.flush()
    nok = find_episodes(db_session, EpisodeFilter(nok_only=True))
    assert [(r.job_key, r.rework) for r in nok] == [("ST10:0:2", "scrapped")]
    assert len(find_episodes(db_session, EpisodeFilter(since=NOW + timedelta(minutes=2)))) == 2
    assert find_episodes(db_session, EpisodeFilter(station="ST20")) == []
    assert find_episodes(db_session, EpisodeFilter(task="screwing")) == []
    first = find_episodes(db_session, EpisodeFilter())[0]
    mark_pruned(db_session, [first.id], NOW)
    assert [r.job_key for r in find_episodes(db_session, EpisodeFilter())] == [
        "ST10:0:2",
        "ST10:0:3",
    ]
    (pruned,) = [r for r in find_episodes(db_session, EpisodeFilter(pruned=True)) if r.pruned_at]
    assert pruned.job_key == "ST10:0:1"
    # The part's route shows each job's episode beside the technician's label.
    (labelled,) = part_history(db_session, "P-2").jobs
    assert labelled.episode is not None and labelled.episode.path == "ST10/ST10_0_2"
    assert labelled.rework == "scrapped" and not labelled.episode.pruned
    (gone,) = part_history(db_session, "P-1").jobs
    assert gone.episode is not None and gone.episode.pruned


def _row(i: int, ok: bool, size: int = 100) -> EpisodeRow:
    return EpisodeRow(
        id=i,
        job_id=i,
        job_key=f"ST10:0:{i}",
        attempt=1,
        station_id="ST10",
        part_id=None,
        task="nut_install",
        ok=ok,
        error_code=0 if ok else 204,
        policy_version="v1",
        frames=10,
        bytes=size,
        rework=None,
        ended_at=NOW + timedelta(seconds=i),
        created_at=NOW,
        path=f"ST10/ST10_0_{i}",
        pruned_at=None,
    )


def test_the_share_kept_is_deterministic_and_near_its_value() -> None:
    keys = [f"ST10:0:{i}" for i in range(4000)]
    kept = [k for k in keys if kept_share(k, 0.1)]
    assert 300 < len(kept) < 500
    assert kept == [k for k in keys if kept_share(k, 0.1)]
    assert set(kept) <= {k for k in keys if kept_share(k, 0.3)}  # a larger share, a superset


def test_prune_keeps_every_nok_and_drops_the_oldest_ok_within_the_budget() -> None:
    rows = [_row(i, ok=i % 5 != 0) for i in range(1, 41)]  # 8 NOK, 32 OK
    every = prune_plan(rows, keep_ok=1.0)
    assert every.drop == () and every.kept == 40
    share = prune_plan(rows, keep_ok=0.1)
    dropped = set(share.drop)
    assert all(r.id not in dropped for r in rows if not r.ok)
    assert {r.id for r in rows if r.ok and r.id not in dropped} == {
        r.id for r in rows if r.ok and kept_share(r.job_key, 0.1)
    }
    budget = prune_plan(rows, keep_ok=1.0, budget_bytes=8 * 100 + 5 * 100)
    kept_ok = sorted(r.id for r in rows if r.ok and r.id not in set(budget.drop))
    assert kept_ok == sorted(r.id for r in rows if r.ok)[-5:]  # the newest OK stay
    assert budget.kept_bytes == 1300 and budget.over_budget == 0
    tight = prune_plan(rows, keep_ok=1.0, budget_bytes=300)
    assert tight.kept == 8 and tight.over_budget == 500  # NOK only, still over
    with pytest.raises(ValueError, match="between 0 and 1"):
        prune_plan(rows, keep_ok=1.5)


def test_a_retried_job_keeps_both_attempts_episodes(db_session: Session) -> None:
    """The first attempt's episode (the failure worth learning from) is on record beside
    the second's, each with its own outcome."""
    sync_line(db_session, load_line_config(sample_config_path()))
    rec = JobRecord.model_validate(
        {
            "station_id": "ST10",
            "epoch": 0,
            "job_seq": 7,
            "part_id": "P-7",
            "program_no": 1,
            "task": "nut_install",
            "policy_version": "v2",
            "started_at": NOW,
            "ended_at": NOW + timedelta(minutes=2),
            "cycle_time_ms": 60000,
            "ok": True,
            "attempt": 2,
            "episode": {"path": "ST10/ST10_0_7_2", "frames": 800, "bytes": 2000},
            "earlier_episodes": [
                {
                    "attempt": 1,
                    "ok": False,
                    "policy_version": "v2",
                    "episode": {"path": "ST10/ST10_0_7", "frames": 900, "bytes": 3000},
                }
            ],
        }
    )
    # As the outbox keeps it: JSON there and back.
    record_job(db_session, JobRecord.model_validate_json(rec.model_dump_json()))
    rows = db_session.scalars(select(m.Episode).order_by(m.Episode.attempt)).all()
    assert [(r.attempt, r.path, r.ok) for r in rows] == [
        (1, "ST10/ST10_0_7", False),
        (2, "ST10/ST10_0_7_2", True),
    ]
