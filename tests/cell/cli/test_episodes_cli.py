"""``intern episodes list|export|prune`` through the whole ``intern`` app, on a database of
their own and an episode store written by the real runner (jobs on the simulator)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from cell.cli import app
from cell.config import load_line_config, sample_config_path
from cell.line.drafts import JobDraft
from cell.record import models as m
from cell.record.episodes import kept_share
from cell.record.jobs import record_job
from cell.record.roster import sync_line
from robot.episode_files import load_episode
from robot.job_episodes import EpisodeKeeper, EpisodeStore
from robot.jobs import Task
from robot.skills import run_job
from tests.robot.test_lerobot_v3 import real_lerobot_dataset
from tests.robot.test_skills import _spec

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
# Seeds at difficulty 3: 1, 2 and 3 end NOK, 4 and 7 OK (the simulator is deterministic).
SEEDS = (1, 2, 3, 4, 7)


def _record(s: Session, store: Path, seq: int) -> None:
    draft = JobDraft("ST10", 0, seq, f"P-{seq}", 1, T0 + timedelta(minutes=seq))
    spec = _spec(Task.NUT_INSTALL, seed=seq, difficulty=3.0).model_copy(
        update={"job_key": draft.key, "station_id": "ST10"}
    )
    keeper = EpisodeKeeper(EpisodeStore(store))
    outcome = keeper.keep(spec, run_job(spec, tape=keeper.tape(spec)))
    rec = draft.result(
        outcome, task="nut_install", recipe_id=None, attempt=1, ended_at=draft.started_at
    )
    record_job(s, rec)


@pytest.fixture
def store(
    make_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Path:
    url = make_database()
    folder = tmp_path / "episodes"
    monkeypatch.setenv("INTERN_DATABASE_URL", url)
    monkeypatch.setenv("INTERN_EPISODE_DIR", str(folder))
    monkeypatch.setenv("COLUMNS", "200")
    engine = create_engine(url)
    with Session(engine) as s:
        sync_line(s, load_line_config(sample_config_path()))
        for seq in SEEDS:
            _record(s, folder, seq)
        job = s.scalars(select(m.Job).where(m.Job.job_seq == 2)).one()
        job.rework = "scrapped"
        s.commit()
    engine.dispose()
    return folder


def intern(*args: str) -> Result:
    return CliRunner().invoke(app, ["episodes", *args])


def _listed(*args: str) -> list[dict[str, object]]:
    res = intern("list", "--since", "2026-03-01T00:00+00:00", "--format", "json", *args)
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert isinstance(rows, list)
    return rows


def test_list_shows_each_job_with_outcome_size_and_rework(store: Path) -> None:
    rows = _listed()
    assert [r["job_key"] for r in rows] == [f"ST10:0:{s}" for s in SEEDS]
    first = rows[0]
    assert first["outcome"] == "NOK stripped" and first["policy_version"] == "expert"
    assert first["part_id"] == "P-1" and first["station_id"] == "ST10"
    assert isinstance(first["frames"], int) and first["frames"] > 100
    size = sum(p.stat().st_size for p in (store / "ST10/ST10_0_1").iterdir())
    assert first["size_mb"] == round(size / 1e6, 3)
    nok = _listed("--nok")
    assert [r["job_key"] for r in nok] == ["ST10:0:1", "ST10:0:2", "ST10:0:3"]
    assert [r["rework"] for r in nok] == [None, "scrapped", None]
    table = intern("list", "--since", "2026-03-01T00:00+00:00")
    assert table.exit_code == 0 and "ST10:0:4" in table.output and "scrapped" in table.output
    csv = intern("list", "--since", "2026-03-01T00:00+00:00", "--format", "csv")
    assert csv.stdout.splitlines()[0].startswith("job_key,part_id,station_id,outcome")


def test_list_refuses_bad_input_with_one_line(store: Path) -> None:
    for args, said in (
        (("--station", "ST99"), "unknown station 'ST99'"),
        (("--since", "yesterday"), "--start"),
    ):
        res = intern("list", *args)
        assert res.exit_code == 2 and said in res.output and "Traceback" not in res.output


def test_prune_keeps_every_nok_and_a_share_of_ok_and_records_it(store: Path) -> None:
    keys = {f"ST10:0:{s}": s for s in (4, 7)}
    kept_ok = {k for k in keys if kept_share(k, 0.5)}
    dry = intern("prune", "--keep-ok", "0.5", "--dry-run")
    assert dry.exit_code == 0 and f"would drop {2 - len(kept_ok)} episodes" in dry.output
    assert len(_listed()) == 5 and all((store / f"ST10/ST10_0_{s}").is_dir() for s in SEEDS)

    res = intern("prune", "--keep-ok", "0.5")
    assert res.exit_code == 0 and f"dropped {2 - len(kept_ok)} episodes" in res.output
    listed = {r["job_key"] for r in _listed()}
    assert listed == {"ST10:0:1", "ST10:0:2", "ST10:0:3"} | kept_ok
    for key, seq in keys.items():
        assert (store / f"ST10/ST10_0_{seq}").is_dir() == (key in kept_ok)
    # A budget of nothing drops every OK episode left and says NOK alone exceed it.
    res = intern("prune", "--keep-ok", "1", "--budget-gb", "0")
    assert res.exit_code == 0 and "NOK episodes alone exceed the budget" in res.output
    assert {r["job_key"] for r in _listed()} == {"ST10:0:1", "ST10:0:2", "ST10:0:3"}
    engine = create_engine(os.environ["INTERN_DATABASE_URL"])
    with Session(engine) as s:
        rows = s.scalars(select(m.Episode)).all()
        assert len(rows) == 5  # the rows stay, the pruned ones marked
        assert sorted((e.ok, e.pruned_at is not None) for e in rows) == [
            (False, False),
            (False, False),
            (False, False),
            (True, True),
            (True, True),
        ]
    engine.dispose()
    bad = intern("prune", "--keep-ok", "2")
    assert bad.exit_code == 2 and "--keep-ok must be between 0 and 1" in bad.output


def test_export_from_the_record_reads_back_in_lerobot(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pyarrow", reason="the writer needs pyarrow: pip install pyarrow")
    res = intern("export", "--out", str(tmp_path / "ds"), "--station", "ST10")
    assert (
        res.exit_code == 0 and "wrote 2 episodes" in res.output and "3 NOK left out" in res.output
    )
    res = intern(
        "export", "--out", str(tmp_path / "all"), "--nok", "--since", "2026-03-02T06:02+00:00"
    )
    assert res.exit_code == 0 and "wrote 4 episodes" in res.output, res.output
    dataset_cls = real_lerobot_dataset()
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    episodes = [load_episode(store / f"ST10/ST10_0_{s}/episode.json") for s in (2, 3, 4, 7)]
    ds = dataset_cls("intern/episodes", root=tmp_path / "all")
    assert ds.num_episodes == 4 and ds.fps == 30
    assert len(ds) == sum(e.length for e in episodes)
    assert ds.meta.camera_keys == []  # expert jobs run without cameras
    last = episodes[0].length - 1
    item = ds[last]
    assert np.array_equal(item["observation.state"].numpy(), episodes[0].state[last])
    assert np.array_equal(item["action"].numpy(), episodes[0].action[last])
    assert bool(item["next.done"]) and not bool(item["next.success"])
    assert item["task"] == episodes[0].manifest["instruction"]


def test_export_refuses_what_it_cannot_do(store: Path, tmp_path: Path) -> None:
    res = intern("export", "--out", str(tmp_path / "x"), "--station", "ST20")
    assert res.exit_code == 2 and "no episodes on record match" in res.output
    res = intern(
        "export", "--out", str(tmp_path / "x"), "--from", str(tmp_path), "--task", "screwing"
    )
    assert res.exit_code == 2 and "--from exports a whole folder" in res.output
    assert "Traceback" not in res.output
