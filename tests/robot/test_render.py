"""Cameras: the studs are visible where they are, and the images follow the arms."""

from __future__ import annotations

import math

import numpy as np

from robot.env import CellEnv
from robot.jobs import Task
from robot.schema import ACTION_DIM, MAX_STEP_M, Observation
from robot.sim.render import WRIST_CAM_HEIGHT_M, WRIST_FOV_DEG

TAN = math.tan(math.radians(WRIST_FOV_DEG / 2))
ENGAGE_Z = 0.09  # stud tops of the nut casting


def dark_centroid(img: np.ndarray) -> tuple[float, float, float] | None:
    """(row, column, dark mass) of the near-black pixels: the stud under the tool."""
    g = img.astype(np.float32).mean(axis=2)
    w = np.clip((60.0 - g) / 60.0, 0.0, 1.0)
    mass = float(w.sum())
    if mass < 2.0:
        return None
    rows, cols = np.mgrid[0 : g.shape[0], 0 : g.shape[1]]
    return float((w * rows).sum() / mass), float((w * cols).sum() / mass), mass


def stud_offset_m(img: np.ndarray, tool_z: float) -> np.ndarray | None:
    """Where the stud is relative to the tool axis (forward, left), from the image alone."""
    c = dark_centroid(img)
    if c is None:
        return None
    s = img.shape[0]
    nx, ny = 1 - (2 * c[0] + 1) / s, 1 - (2 * c[1] + 1) / s
    return np.array([nx, ny]) * (tool_z + WRIST_CAM_HEIGHT_M - ENGAGE_Z) * TAN


def test_wrist_camera_shows_the_stud_where_it_really_is() -> None:
    env = CellEnv(Task.NUT_INSTALL, seed=8, difficulty=2.0)
    obs = env.reset()
    for i, side in enumerate(("left", "right")):
        arm = env.task.arms[env.task.positions[3 * i].side]
        stud = env.task.positions[3 * i].xy
        seen = stud_offset_m(obs.images[f"wrist_{side}"], float(arm.pos[2]))
        assert seen is not None
        truth = stud - arm.pos[:2]
        assert np.linalg.norm(truth) > 0.002  # the part's jitter is there to be seen
        assert np.linalg.norm(seen - truth) < 0.0008


def test_images_change_when_an_arm_moves_and_only_its_own_camera() -> None:
    env = CellEnv(Task.NUT_INSTALL, seed=3, difficulty=0.0)  # no pixel noise
    before = env.reset()
    a = np.zeros(ACTION_DIM, dtype=np.float32)
    a[0] = MAX_STEP_M  # left arm forward
    a[4] = a[9] = -1.0
    after, _ = env.step(a)
    left0, left1 = before.images["wrist_left"], after.images["wrist_left"]
    assert np.abs(left0.astype(int) - left1.astype(int)).mean() > 1.0
    r0, r1 = dark_centroid(left0), dark_centroid(left1)
    assert r0 is not None and r1 is not None
    assert r1[0] - r0[0] > 3.0  # moving forward, the stud slides down the image
    assert before.images["wrist_right"].tobytes() == after.images["wrist_right"].tobytes()
    assert before.images["head"].tobytes() != after.images["head"].tobytes()


def test_installed_nuts_show_up_in_the_head_camera() -> None:
    env = CellEnv(Task.NUT_INSTALL, seed=5, difficulty=0.0)
    obs = env.reset()
    while obs.extras["round"] == 0:
        obs, _ = env.step(env.expert_action())
    # Now the hands hover over stud 2: stud 1 has its nut, stud 3 is still bare.
    assert [p.occupied for p in env.task.positions[:3]] == [True, False, False]

    def yellow(stud: int) -> float:
        x, y = env.task.positions[stud].xy  # head camera: orthographic, 0.26 m half width
        i, j = round((1 - (x - 0.50) / 0.26) * 32 - 0.5), round((1 - y / 0.26) * 32 - 0.5)
        im = obs.images["head"][i - 1 : i + 2, j - 1 : j + 2].astype(float)
        return float(np.clip((im[..., 0] + im[..., 1]) / 2 - im[..., 2], 0, None).sum())

    assert yellow(0) > yellow(2) + 150


def _vision_controller(obs: Observation, last_z: dict[int, float]) -> np.ndarray:
    """Drives from images and proprioception only (no hidden truth): align on the dark
    stud, descend, run the tool until the nut is released, lift."""
    a = np.zeros(ACTION_DIM, dtype=np.float32)
    for i, cam in enumerate(("wrist_left", "wrist_right")):
        z, torque, holding = obs.state[i * 7 + 2], obs.state[i * 7 + 5], obs.state[i * 7 + 6]
        o = i * 5
        a[o + 4] = -1.0
        h = float(z) - ENGAGE_Z
        if holding < 0.5:
            a[o + 2] = MAX_STEP_M if h < 0.022 else 0.0
            continue
        if torque > 0 or (h < 0.001 and abs(last_z.get(i, 1.0) - float(z)) < 1e-4):
            a[o + 2], a[o + 4] = -0.003, 1.0
        else:
            off = stud_offset_m(obs.images[cam], float(z))
            if off is not None:
                step = 0.6 * off
                a[o : o + 2] = step * min(1.0, MAX_STEP_M / max(np.linalg.norm(step), 1e-9))
                if np.linalg.norm(off) < 0.0005:
                    a[o + 2] = -min(MAX_STEP_M, 0.5 * h + 0.002)
        last_z[i] = float(z)
    return a


def test_a_controller_that_sees_only_the_cameras_installs_the_nuts() -> None:
    wins = 0
    for seed in (100, 101, 102, 103):
        env = CellEnv(Task.NUT_INSTALL, seed=seed)
        obs, done, memory = env.reset(), False, {}
        while not done:
            obs, done = env.step(_vision_controller(obs, memory))
        wins += env.outcome().success
    assert wins >= 3
