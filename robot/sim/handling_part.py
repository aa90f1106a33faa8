"""What a handling task works with: the casting's lugs, the fixture's nests, the hands.

Geometry of the casting (body, lugs at grasp height) and of the fixture's nests, the
tolerances that decide a grasp, a lift and a placement, and one hand's grasp state
(``Grip``). The task that moves them is ``robot.sim.handling.HandlingTask``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HOME_XY = np.array([0.50, 0.0])
BODY_HALF = (0.14, 0.12)
BODY_TOP = 0.06
LUG_Y = 0.155
LUG_Z = 0.035  # grasp height above the casting's base
LUG_TOP = 0.045
LUG_HALF = (0.010, 0.015)
FINGER_CAPTURE_MM = 15.0
GOOD_GRASP_MM = 6.0
GOOD_GRASP_DEG = 5.0
NEST_CAPTURE_MM = 3.0
NEST_TOP = 0.012
PUSH_LIMIT = 4
ONE_HAND_LIFT_M = 0.010  # a hand holding alone rises this far above its grasp: drop
APPROACH_M = 0.05
LIFT_M = 0.04
GRIP_RATE = 0.25


@dataclass
class Grip:
    """One hand's grasp state."""

    holding: bool = False
    good: bool = False
    closed_on_air: bool = False
    attempts: int = 0
    offset: np.ndarray | None = None  # lug minus hand position at grasp
