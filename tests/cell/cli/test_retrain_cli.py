"""``intern policy train-from-record`` through the whole ``intern`` app: a record of real
jobs run on the simulator, their episodes in a temporary store, a tiny base checkpoint in
the plant's checkpoint store."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from cell.cli import app
from cell.cli.retrain import choose
from cell.config import load_line_config, sample_config_path
from cell.record.episodes import EpisodeRow
from cell.record.roster import sync_line
from policy.checkpoint import read_config
from policy.local import LocalPolicy
from policy.recipe import TrainConfig
from policy.store import CheckpointStore
from policy.train import train
from robot.jobs import Task
from tests.cell.cli.test_episodes_cli import T0, _record

# At difficulty 3 seeds 1 and 2 end NOK, 4 and 7 OK (see test_episodes_cli).
SEEDS = (1, 2, 4, 7)


@pytest.fixture
def plant(
    make_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[Path, str]:
    """The checkpoint store folder and the version of the tiny base checkpoint in it."""
    url = make_database()
    episodes, checkpoints = tmp_path / "episodes", tmp_path / "checkpoints"
    monkeypatch.setenv("INTERN_DATABASE_URL", url)
    monkeypatch.setenv("INTERN_EPISODE_DIR", str(episodes))
    monkeypatch.setenv("INTERN_CHECKPOINT_DIR", str(checkpoints))
    engine = create_engine(url)
    with Session(engine) as s:
        sync_line(s, load_line_config(sample_config_path()))
        for seq in SEEDS:
            _record(s, episodes, seq)
    engine.dispose()
    tiny = TrainConfig(
        task=Task.NUT_INSTALL,
        out=checkpoints / "base",
        expert_episodes=1,
        steps=2,
        batch=4,
        dagger_rounds=0,
        d_model=32,
    )
    return checkpoints, str(train(tiny, log=lambda _: None)["version"])


def intern(*args: str) -> Result:
    return CliRunner().invoke(app, ["policy", "train-from-record", *args])


def test_a_new_version_continues_the_base_on_the_stations_failures(
    plant: tuple[Path, str],
) -> None:
    checkpoints, base = plant
    res = intern(
        "--station",
        "ST10",
        "--base",
        base,
        "--steps",
        "3",
        "--batch",
        "4",
        "--author",
        "ana",
        "--rounds",
        "1",
        "--round-steps",
        "2",
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout[res.stdout.index("{") : res.stdout.rindex("}") + 1])
    new = summary["version"]
    assert new != base and summary["continued_from"] == base
    assert summary["nok_jobs"] == ["ST10:0:2", "ST10:0:1"]  # every NOK one, newest first
    assert summary["ok_jobs"] == ["ST10:0:7", "ST10:0:4"]  # one OK per NOK
    assert summary["from_record"] == {"failures": 2, "successes": 2}
    # One correction round: the new policy drove both failed parts again, then 2 steps.
    [round0] = summary["correction_rounds"]
    assert round0["round"] == 0 and 0.0 <= round0["policy_passed"] <= 1.0
    assert summary["steps"] == 3 + 2
    folder = CheckpointStore([checkpoints]).find(new)
    assert folder == checkpoints / new and read_config(folder)["version"] == new
    assert CheckpointStore([checkpoints]).find(base) == checkpoints / "base"  # kept beside
    assert LocalPolicy.load(folder).version == new
    assert f"rollout start --station ST10 --candidate {new} --author ana" in res.output


def test_it_refuses_what_it_cannot_do_with_one_line(plant: tuple[Path, str]) -> None:
    for args, said in (
        (("--station", "ST99"), "unknown station 'ST99'"),
        (("--station", "ST10"), "ran the robot's own program"),
        (("--station", "ST10", "--base", "0123456789abcdef"), "not in the checkpoint store"),
        (("--station", "ST10", "--since", "2027-01-01T00:00"), "no NOK episodes of ST10"),
    ):
        res = intern(*args)
        assert res.exit_code == 2 and said in res.output, res.output
        assert "Traceback" not in res.output


def _row(i: int, ok: bool) -> EpisodeRow:
    t = T0 + timedelta(minutes=i)
    return EpisodeRow(
        i, i, f"ST10:0:{i}", 1, "ST10", None, "nut_install", ok, 0, "v", 1, 1, None, t, t, "", None
    )


def test_the_selection_takes_every_failure_and_a_share_of_successes_newest_first() -> None:
    rows = [_row(i, ok=i % 3 == 0) for i in range(1, 10)]  # 3, 6, 9 OK
    nok, ok = choose(rows, max_episodes=100, ok_share=0.5)
    assert [r.id for r in nok] == [8, 7, 5, 4, 2, 1] and [r.id for r in ok] == [9, 6, 3]
    nok, ok = choose(rows, max_episodes=4, ok_share=1.0)
    assert [r.id for r in nok] == [8, 7, 5, 4] and ok == []
    nok, ok = choose(rows, max_episodes=7, ok_share=1.0)
    assert len(nok) == 6 and [r.id for r in ok] == [9]
