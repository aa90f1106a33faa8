"""Which episodes ``policy.retrain`` uses as stored and which it runs again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from policy.recipe import TrainConfig
from policy.retrain import demonstration
from robot.env import CellEnv
from robot.episode_files import load_episode, record_episode
from robot.job_episodes import EpisodeKeeper, EpisodeStore
from robot.jobs import JobSpec, Side, Task
from robot.sim.config import default_fasteners
from robot.skills import run_job


def _cfg(tmp_path: Path, task: Task = Task.SCREWING) -> TrainConfig:
    return TrainConfig(task=task, out=tmp_path, dagger_rounds=0)


def test_an_episode_with_expert_labels_and_cameras_is_used_as_stored(tmp_path: Path) -> None:
    path = record_episode(CellEnv(Task.SCREWING, seed=4), tmp_path, "e", expert_labels=True)
    rec = load_episode(path)
    assert rec.expert_action is not None
    ep = demonstration(path, _cfg(tmp_path))
    np.testing.assert_array_equal(ep.action, rec.expert_action)
    assert ep.executed is not None and len(ep) == rec.length


def test_an_episode_without_cameras_is_the_experts_run_of_its_seed(tmp_path: Path) -> None:
    path = record_episode(CellEnv(Task.SCREWING, seed=4, render=False), tmp_path, "e")
    ep = demonstration(path, _cfg(tmp_path))
    assert ep.seed == 4 and ep.images.shape[0] == len(ep) and ep.aim is not None
    with pytest.raises(ValueError, match="an episode of screwing among nut_install"):
        demonstration(path, _cfg(tmp_path, Task.NUT_INSTALL))


def test_a_job_episode_is_made_again_with_its_own_recipe(tmp_path: Path) -> None:
    # A housing with four studs per side, not the task's default three: the episode's
    # manifest keeps the job's recipe and the expert's run is made on that part.
    one = default_fasteners(Task.NUT_INSTALL)[0]
    four = tuple(
        one.model_copy(update={"position": p, "side": side}) for side in Side for p in range(1, 5)
    )
    spec = JobSpec(
        job_key="ST10:0:7",
        station_id="ST10",
        robot_id="R1",
        part_id="P-7",
        program_no=1,
        task=Task.NUT_INSTALL,
        fasteners=four,
        takt_s=76.0,
        seed=7,
    )
    keeper = EpisodeKeeper(EpisodeStore(tmp_path / "episodes"))
    out = keeper.keep(spec, run_job(spec, tape=keeper.tape(spec)))
    assert out.episode is not None
    path = EpisodeStore(tmp_path / "episodes").manifest_path(out.episode.path)
    ep = demonstration(path, _cfg(tmp_path, Task.NUT_INSTALL))
    assert ep.instruction == "install 4 nuts per side on the casting"
    assert ep.success and ep.seed == 7
