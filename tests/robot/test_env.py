"""CellEnv: the environment contract the policy is trained and measured on."""

from __future__ import annotations

import numpy as np
import pytest

from robot.env import CellEnv, rollout
from robot.errors import ActionError, EpisodeStateError
from robot.jobs import Task
from robot.schema import ACTION_DIM, CAMERAS, IMAGE_SIZE, STATE_DIM


def _run(env: CellEnv) -> tuple[list, list]:
    obs = env.reset()
    seen, actions = [obs], []
    done = False
    while not done:
        a = env.expert_action()
        obs, done = env.step(a)
        seen.append(obs)
        actions.append(env.last_applied.copy())
    return seen, actions


def test_observation_layout_and_first_view() -> None:
    env = CellEnv(Task.NUT_INSTALL, seed=4)
    obs = env.reset()
    assert env.instruction == "install 3 nuts per side on the casting" == obs.instruction
    assert set(obs.images) == set(CAMERAS)
    for img in obs.images.values():
        assert img.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) and img.dtype == np.uint8
    assert obs.state.shape == (STATE_DIM,) and obs.state.dtype == np.float32
    assert obs.step == 0 and obs.extras["round"] == 0.0
    assert obs.state[6] == 1.0 and obs.state[13] == 1.0  # both hands hold a nut
    assert env.expert_action().shape == (ACTION_DIM,)


def test_same_seed_gives_the_same_episode_byte_for_byte() -> None:
    a_obs, a_act = _run(CellEnv(Task.NUT_INSTALL, seed=11, difficulty=1.5))
    b_obs, b_act = _run(CellEnv(Task.NUT_INSTALL, seed=11, difficulty=1.5))
    assert len(a_obs) == len(b_obs)
    for x, y in zip(a_obs, b_obs, strict=True):
        assert x.state.tobytes() == y.state.tobytes()
        for cam in CAMERAS:
            assert x.images[cam].tobytes() == y.images[cam].tobytes()
    assert b"".join(a.tobytes() for a in a_act) == b"".join(a.tobytes() for a in b_act)
    c_obs, _ = _run(CellEnv(Task.NUT_INSTALL, seed=12, difficulty=1.5))
    assert c_obs[0].images["wrist_left"].tobytes() != a_obs[0].images["wrist_left"].tobytes()


def test_rendering_and_asking_the_expert_do_not_change_the_episode() -> None:
    with_cams = rollout(CellEnv(Task.NUT_INSTALL, seed=5, render=True))
    without = rollout(CellEnv(Task.NUT_INSTALL, seed=5, render=False))
    assert with_cams.model_dump() == without.model_dump()
    env = CellEnv(Task.NUT_INSTALL, seed=5, render=False)
    env.reset()
    done = False
    while not done:
        a = env.expert_action()
        env.expert_action()  # asked twice: a pure function of the state
        _, done = env.step(a)
    assert env.outcome().model_dump() == without.model_dump()


def test_expert_installs_all_nuts_inside_takt() -> None:
    out = rollout(CellEnv(Task.NUT_INSTALL, seed=1, render=False))
    assert out.done and out.success and out.failure is None and out.error_code == 0
    assert [(f.side.value, f.position) for f in out.fasteners] == [
        ("left", 1),
        ("left", 2),
        ("left", 3),
        ("right", 1),
        ("right", 2),
        ("right", 3),
    ]
    assert all(18 <= f.torque_nm <= 26 and 540 <= f.angle_deg <= 900 for f in out.fasteners)
    assert out.within_takt and out.cycle_time_s == out.sim_time_s
    assert set(out.phases) == {"walk", "fetch", "align", "drive", "verify"}
    assert out.steps < 300  # the policy-driven part is short


def test_doing_nothing_times_out_and_blows_the_takt() -> None:
    env = CellEnv(Task.NUT_INSTALL, seed=2, render=False)
    env.reset()
    done, steps = False, 0
    while not done:
        _, done = env.step(np.zeros(ACTION_DIM))
        steps += 1
    out = env.outcome()
    assert steps == env.max_steps
    assert not out.success and out.failure == "fasten_timeout"
    assert out.cycle_time_s > 76.0 and not out.within_takt


def test_misuse_is_refused_with_a_clear_error() -> None:
    env = CellEnv(Task.NUT_INSTALL, seed=1, render=False)
    with pytest.raises(EpisodeStateError, match="reset"):
        env.step(np.zeros(ACTION_DIM))
    env.reset()
    with pytest.raises(ActionError, match="shape"):
        env.step(np.zeros(3))
    with pytest.raises(ActionError, match="NaN"):
        env.step(np.full(ACTION_DIM, np.nan))
    with pytest.raises(ValueError, match="difficulty"):
        CellEnv(Task.NUT_INSTALL, seed=1, difficulty=9.0)
    with pytest.raises(ValueError, match="seed"):
        CellEnv(Task.NUT_INSTALL, seed=-1)
    rollout(env)
    with pytest.raises(EpisodeStateError, match="over"):
        env.step(np.zeros(ACTION_DIM))


@pytest.mark.parametrize("task", [Task.NUT_INSTALL, Task.MATERIAL_HANDLING])
def test_aim_points_each_hand_at_what_it_must_line_up_with(task: Task) -> None:
    env = CellEnv(task, seed=4, render=False)
    env.reset()
    off, ok = env.aim()
    assert off.shape == (2, 2) and ok.all()
    # Moving the left hand sideways toward its target shrinks its offset by exactly the
    # move (limited to the speed limit) and leaves the right hand's alone.
    a = np.zeros(ACTION_DIM, dtype=np.float32)
    a[0:2] = off[0]
    env.step(a)
    moved = env.last_applied[0:2]
    assert np.abs(moved).max() > 1e-3
    after, ok_after = env.aim()
    assert ok_after[0]
    np.testing.assert_allclose(after[0], off[0] - moved, atol=1e-6)
    np.testing.assert_allclose(after[1], off[1], atol=1e-6)


def test_aim_ends_once_the_fastener_has_started() -> None:
    env = CellEnv(Task.NUT_INSTALL, seed=4, render=False)
    env.reset()
    while env.aim()[1].any():
        env.step(env.expert_action())
    off, ok = env.aim()
    assert not ok.any() and not off.any()
    # Both hands now hold a fastener on its stud: nothing left to line up with.
    assert all(j.engaged is not None or j.done for j in env.task.jobs.values())
