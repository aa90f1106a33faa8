"""Material handling: the expert's transfer, and the failures that come from the hands."""

from __future__ import annotations

import numpy as np

from robot.env import CellEnv, rollout
from robot.jobs import ErrorCode, Side, Task
from robot.schema import ACTION_DIM, MAX_STEP_M
from robot.sim.expert import SETTLE_TICKS


def _to_place_round(seed: int = 4) -> CellEnv:
    env = CellEnv(Task.MATERIAL_HANDLING, seed=seed, render=False)
    obs = env.reset()
    while obs.extras["round"] == 0:
        obs, done = env.step(env.expert_action())
        assert not done
    return env


def test_expert_moves_the_casting_into_the_fixture() -> None:
    out = rollout(CellEnv(Task.MATERIAL_HANDLING, seed=4, render=False))
    assert out.success and out.fasteners == [] and out.error_code == 0
    assert {"walk", "align", "transfer", "place", "verify"} == set(out.phases)
    assert out.cycle_time_s < 76.0


def test_state_shows_the_casting_held_by_both_hands() -> None:
    env = _to_place_round()
    s = env.task.state()
    assert s[6] == s[13] == 1.0 and s[5] == s[12] == 1.0  # holding, and loaded
    assert s[14] == 0.5  # picked, not yet placed


def test_opening_the_grippers_high_above_the_fixture_drops_the_casting() -> None:
    env = _to_place_round()
    a = np.zeros(ACTION_DIM, dtype=np.float32)
    a[4] = a[9] = -1.0
    done = False
    while not done:
        _, done = env.step(a)
    out = env.outcome()
    assert not out.success and out.error_code == ErrorCode.DROP


def test_lowering_onto_the_nests_off_target_and_pushing_is_a_collision() -> None:
    env = _to_place_round()
    task = env.task
    off = task.fix_xy + np.array([0.0, 0.008]) - task.cast_xy  # 8 mm to the left
    done = False
    while not done:
        a = np.zeros(ACTION_DIM, dtype=np.float32)
        a[4] = a[9] = 1.0
        step = np.clip(off, -MAX_STEP_M, MAX_STEP_M)
        off = off - step
        a[0:2] = a[5:7] = step
        a[2] = a[7] = -0.006
        _, done = env.step(a)
    out = env.outcome()
    assert out.failure == "collision" and out.error_code == ErrorCode.COLLISION


def test_releasing_on_top_of_the_nests_is_a_misplacement() -> None:
    env = _to_place_round()
    task = env.task
    off = task.fix_xy + np.array([0.006, 0.0]) - task.cast_xy
    a = np.zeros(ACTION_DIM, dtype=np.float32)
    a[4] = a[9] = 1.0
    a[0:2] = a[5:7] = off
    env.step(a)
    while task.cast_z > 0.0125:  # down to the nests' tops, no further
        a = np.zeros(ACTION_DIM, dtype=np.float32)
        a[4] = a[9] = 1.0
        a[2] = a[7] = -min(MAX_STEP_M, task.cast_z - 0.012)
        env.step(a)
    a = np.zeros(ACTION_DIM, dtype=np.float32)
    a[4] = a[9] = -1.0
    done = False
    while not done:
        _, done = env.step(a)
    assert env.outcome().error_code == ErrorCode.MISPLACED


def test_expert_lifts_only_after_both_hands_have_held_a_while() -> None:
    env = CellEnv(Task.MATERIAL_HANDLING, seed=4, render=False)
    env.reset()
    task = env.task
    both_since: int | None = None
    for tick in range(200):
        if both_since is None and all(g.holding for g in task.grips.values()):
            both_since = tick
        if task.cast_z > 0.0:
            break
        env.step(env.expert_action())
    assert both_since is not None and task.cast_z > 0.0
    assert tick - both_since >= SETTLE_TICKS


def test_expert_lets_go_only_after_the_casting_has_sat_in_the_nests_a_while() -> None:
    env = _to_place_round()
    task = env.task
    seated_since: int | None = None
    for tick in range(300):
        if seated_since is None and task.cast_z <= 1e-6:
            seated_since = tick
        if task.released:
            break
        env.step(env.expert_action())
    assert seated_since is not None and task.released and task.placed
    assert tick - seated_since > SETTLE_TICKS


def _left_hand_only(dz: float = 0.0) -> np.ndarray:
    """An action closing the left gripper (moving it up by ``dz``), the right one open."""
    a = np.zeros(ACTION_DIM, dtype=np.float32)
    a[4], a[9], a[2] = 1.0, -1.0, dz
    return a


def _close_left_hand_above_its_lug(env: CellEnv, height_m: float) -> None:
    """Put the left hand over its lug at ``height_m`` above the lug's middle and close it;
    the right hand stays open where it is."""
    task = env.task
    arm = task.arms[Side.LEFT]
    lug = task.lug(Side.LEFT)
    arm.teleport(np.array([lug[0], lug[1], lug[2] + height_m]), yaw=task.cast_yaw)
    while not task.grips[Side.LEFT].holding:
        _, done = env.step(_left_hand_only())
        assert not done


def test_a_grasp_high_on_the_lug_is_not_a_lift_but_rising_from_it_drops() -> None:
    env = CellEnv(Task.MATERIAL_HANDLING, seed=4, render=False)
    env.reset()
    _close_left_hand_above_its_lug(env, 0.011)  # inside the capture height, above 10 mm
    for _ in range(5):
        _, done = env.step(_left_hand_only())
        assert not done and env.task.failure is None
    env.step(_left_hand_only(dz=0.011))
    assert env.task.failure == ErrorCode.DROP


def test_lifting_with_one_hand_from_the_lug_drops_the_casting() -> None:
    env = CellEnv(Task.MATERIAL_HANDLING, seed=4, render=False)
    env.reset()
    _close_left_hand_above_its_lug(env, 0.0)
    lift = _left_hand_only(dz=0.006)
    env.step(lift)
    assert env.task.failure is None  # 6 mm up: the lug still sits in the fingers
    env.step(lift)
    assert env.task.failure == ErrorCode.DROP
