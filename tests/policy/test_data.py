import numpy as np
import pytest

from policy.data import LIFT_WINDOW, ChunkDataset, collect_expert_episode, lift_ahead, load_demos
from robot.env import CellEnv
from robot.episode_files import write_demos
from robot.jobs import Task
from robot.schema import ACTION_DIM, CAMERAS, MAX_STEP_M


def test_demos_recorded_by_the_robot_recorder_load_for_training(tmp_path):
    write_demos(Task.SCREWING, 2, tmp_path, seed_start=7)
    eps = load_demos(tmp_path, task="screwing")
    assert len(eps) >= 1
    ep = eps[0]
    assert ep.images.shape[1:] == (len(CAMERAS), 64, 64, 3) and ep.images.dtype == np.uint8
    assert ep.action.shape == (len(ep), ACTION_DIM)
    assert ep.instruction.startswith("drive")
    with pytest.raises(ValueError, match="none usable"):
        load_demos(tmp_path, task="nut_install")


def test_chunk_samples_follow_the_episode_and_mark_its_end():
    ep = collect_expert_episode(CellEnv(Task.SCREWING, seed=3), task="screwing", seed=3)
    data = ChunkDataset(horizon=30)
    data.add([ep])
    assert len(data) == len(ep)
    b = data.sample(np.random.default_rng(0), 64)
    assert b["actions"].shape == (64, 30, ACTION_DIM)
    # Chunks running past the last tick are padded and marked invalid, never invented.
    tail = ~b["valid"]
    assert tail.any() and np.all(b["actions"][tail] == 0)
    # Sideways (aligning) states are drawn more often than their share of the data.
    p = data.weights()
    lateral = np.abs(ep.action[:, [0, 1, 5, 6]]).max(axis=1) > 1e-4
    assert p[lateral].mean() > p[~lateral].mean()


def test_states_shortly_before_a_lift_clear_are_drawn_more_often():
    actions = np.zeros((20, ACTION_DIM), dtype=np.float32)
    actions[12, 7] = MAX_STEP_M  # the right arm lifts clear at tick 12
    soon = lift_ahead(actions)
    assert np.flatnonzero(soon).tolist() == list(range(13 - LIFT_WINDOW, 13))
    ep = collect_expert_episode(CellEnv(Task.NUT_INSTALL, seed=5), task="nut_install", seed=5)
    data = ChunkDataset(horizon=30)
    data.add([ep])
    p = data.weights()
    still = np.abs(ep.action[:, [0, 1, 3, 5, 6, 8]]).max(axis=1) < 1e-9
    before_lift = lift_ahead(ep.action) > 0
    assert (still & before_lift).any() and (still & ~before_lift).any()
    assert p[still & before_lift].min() > 2 * p[still & ~before_lift].max()


def test_episodes_made_in_process_carry_the_aim_and_recorded_ones_do_not(tmp_path):
    ep = collect_expert_episode(CellEnv(Task.NUT_INSTALL, seed=5), task="nut_install", seed=5)
    assert ep.aim is not None and ep.aim_valid is not None
    assert ep.aim.shape == (len(ep), 2, 2) and ep.aim_valid.shape == (len(ep), 2)
    # Valid while lining up, not while driving: both kinds of tick are in an episode.
    assert ep.aim_valid.any() and not ep.aim_valid.all()
    write_demos(Task.SCREWING, 1, tmp_path, seed_start=7)
    recorded = load_demos(tmp_path, task="screwing")[0]
    data = ChunkDataset(horizon=30)
    data.add([ep, recorded])
    b = data.sample(np.random.default_rng(1), 256)
    assert b["aim"].shape == (256, 2, 2) and b["aim_valid"].any()
    assert not b["aim"][~b["aim_valid"]].any()  # no offset where none is known
