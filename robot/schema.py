"""Observation and action schemas shared by every robot, the expert and the policy.

Observation (one control tick, 30 Hz):

* ``images``: camera name -> uint8 array (H, W, 3), cameras ``CAMERAS`` at ``IMAGE_SIZE``;
* ``state``: float32 (STATE_DIM,) proprioception, layout ``STATE_LAYOUT``;
* ``instruction``: the task as text, e.g. "install 3 nuts per side".

Action: float32 (ACTION_DIM,), per arm ``[dx, dy, dz, dyaw, tool]`` for the left arm then
the right arm. ``dx, dy, dz`` are end-effector displacements in metres per tick, limited
to ``MAX_STEP_M``; ``dyaw`` is a wrist rotation in radians per tick, limited to
``MAX_YAW_STEP``; ``tool`` in [-1, 1] commands the arm's tool (nut runner or screwdriver:
> 0 drives, < 0 releases; gripper: > 0 closes, < 0 opens).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CONTROL_HZ = 30
DT = 1.0 / CONTROL_HZ

CAMERAS: tuple[str, ...] = ("head", "wrist_left", "wrist_right")
IMAGE_SIZE = 64  # square images, pixels per side

ARM_ACTION = ("dx", "dy", "dz", "dyaw", "tool")
ACTION_DIM = 2 * len(ARM_ACTION)
MAX_STEP_M = 0.012
MAX_YAW_STEP = 0.06

# Per arm: tool-point x, y, z (m, cell frame: x forward, y left, z up from the work
# surface), wrist yaw (rad), tool activity (1 while the runner's spindle turns; gripper
# closure 0..1), tool torque (normalised to the recipe's max; handling: 1 while a
# casting is held), holding flag (a fastener or casting is in the tool and not yet
# delivered); then the task's progress fraction and a spare slot kept at zero.
ARM_STATE = ("x", "y", "z", "yaw", "tool", "torque", "holding")
STATE_LAYOUT: tuple[str, ...] = (
    *(f"left.{k}" for k in ARM_STATE),
    *(f"right.{k}" for k in ARM_STATE),
    "progress",
    "spare",
)
STATE_DIM = len(STATE_LAYOUT)


@dataclass
class Observation:
    """One tick's observation. Arrays are owned by the observation (copies, not views)."""

    images: dict[str, np.ndarray]
    state: np.ndarray
    instruction: str
    step: int = 0
    extras: dict[str, float] = field(default_factory=dict)


def clip_action(action: np.ndarray) -> np.ndarray:
    """Clip an action to the schema's limits; returns a new float32 array."""
    a = np.asarray(action, dtype=np.float32).reshape(ACTION_DIM).copy()
    for arm in range(2):
        o = arm * len(ARM_ACTION)
        a[o : o + 3] = np.clip(a[o : o + 3], -MAX_STEP_M, MAX_STEP_M)
        a[o + 3] = np.clip(a[o + 3], -MAX_YAW_STEP, MAX_YAW_STEP)
        a[o + 4] = np.clip(a[o + 4], -1.0, 1.0)
    return a
