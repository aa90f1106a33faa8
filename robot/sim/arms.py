"""The humanoid's two arms as the simulator moves them, and the simulated clock.

Cell frame: x forward from the robot, y to its left, z up, metres; the work surface under
the part is z = 0. An arm's pose is its tool point (the bottom of the held fastener, or
the gripper's finger tips) and the wrist yaw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robot.jobs import Side
from robot.schema import ARM_ACTION

ARM_DIM = len(ARM_ACTION)
YAW_LIMIT = 0.8  # rad either way from straight ahead
# Reach of each arm's tool point; the arms overlap a little in the middle.
WORKSPACE = {
    Side.LEFT: (np.array([0.20, -0.05, 0.0]), np.array([0.80, 0.45, 0.40])),
    Side.RIGHT: (np.array([0.20, -0.45, 0.0]), np.array([0.80, 0.05, 0.40])),
}


@dataclass
class Arm:
    """One arm: tool-point pose, the last tool command and what the tool is doing."""

    side: Side
    pos: np.ndarray
    yaw: float = 0.0
    tool_cmd: float = -1.0
    tool_level: float = 0.0  # spindle turning (0/1), or gripper closure 0..1
    vel: np.ndarray = field(default_factory=lambda: np.zeros(3))  # last displacement, m/tick
    dz_cmd: float = 0.0  # the last commanded vertical step, m/tick

    def command(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Take the arm action ``a`` (dx, dy, dz, dyaw, tool), already clipped to the schema.

        Sets yaw (within ``YAW_LIMIT``) and the tool command; returns the target position
        within reach, which the caller then resolves against contacts, and the arm action
        as really commanded after the reach limits.
        """
        lo, hi = WORKSPACE[self.side]
        target = np.clip(self.pos + a[:3].astype(np.float64), lo, hi)
        yaw = float(np.clip(self.yaw + a[3], -YAW_LIMIT, YAW_LIMIT))
        applied = np.asarray(a, dtype=np.float32).copy()
        applied[:3] = target - self.pos
        applied[3] = yaw - self.yaw
        self.yaw = yaw
        self.tool_cmd = float(a[4])
        self.dz_cmd = float(a[2])
        return target, applied

    def move_to(self, new_pos: np.ndarray) -> None:
        self.vel = new_pos - self.pos
        self.pos = new_pos

    def teleport(self, pos: np.ndarray, yaw: float = 0.0) -> None:
        """End a scripted phase at ``pos`` (no velocity carried over)."""
        self.pos = np.asarray(pos, dtype=np.float64).copy()
        self.yaw = yaw
        self.vel = np.zeros(3)
        self.dz_cmd = 0.0


@dataclass
class Clock:
    """Simulated time, split by phase (walk, fetch, align, drive, verify, ...)."""

    sim_time_s: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)

    def add(self, phase: str, seconds: float) -> None:
        self.sim_time_s += seconds
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds
