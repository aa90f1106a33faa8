"""The observation/action schema shared by the robot, the expert and the policy."""

from __future__ import annotations

import numpy as np

from robot.base import schema_action_features, schema_observation_features
from robot.schema import (
    ACTION_DIM,
    ARM_ACTION,
    CAMERAS,
    IMAGE_SIZE,
    MAX_STEP_M,
    MAX_YAW_STEP,
    STATE_DIM,
    STATE_LAYOUT,
    clip_action,
)


def test_layouts_are_consistent() -> None:
    assert ACTION_DIM == 2 * len(ARM_ACTION) == 10
    assert STATE_DIM == len(STATE_LAYOUT) == 16
    assert STATE_LAYOUT[:7] == tuple(
        f"left.{k}" for k in ("x", "y", "z", "yaw", "tool", "torque", "holding")
    )
    assert list(schema_action_features())[5] == "right.dx"
    feats = schema_observation_features()
    assert feats["state"] == (STATE_DIM,)
    assert all(feats[c] == (IMAGE_SIZE, IMAGE_SIZE, 3) for c in CAMERAS)


def test_clip_action_limits_each_component_and_copies() -> None:
    raw = np.array([1, -1, 0.005, 1, 5, -0.5, 0.5, -0.02, -1, -7], dtype=np.float64)
    out = clip_action(raw)
    assert out.dtype == np.float32 and out is not raw
    expected = [
        MAX_STEP_M,
        -MAX_STEP_M,
        0.005,
        MAX_YAW_STEP,
        1.0,
        -MAX_STEP_M,
        MAX_STEP_M,
        -MAX_STEP_M,
        -MAX_YAW_STEP,
        -1.0,
    ]
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert raw[0] == 1  # the input is untouched
    inside = np.array([0.001, 0, 0, 0.01, 0.3, 0, -0.002, 0, 0, -0.3], dtype=np.float32)
    np.testing.assert_array_equal(clip_action(inside), inside)
