"""What a fastening task works on: the casting and its fastener positions.

The casting's geometry on the fixture, the two fastener kinds (self-tapping nut on a cast
stud, screw into a tapped hole), one position with its hidden truth (where it really is,
its sampled thread, its rundown), and each arm's part of a round (``ArmJob``). The task
that moves the arms over them is ``robot.sim.fasten.FastenTask``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot.jobs import Side
from robot.sim import fastening as fz

CASTING_XY = np.array([0.50, 0.0])
CASTING_HALF = (0.20, 0.23)
FLANGE_Z = 0.08
ROW_Y = 0.17  # studs or holes at y = +-ROW_Y in the casting frame
APPROACH_M = 0.035
CLEARANCE_M = 0.020
SOCKET_DEPTH_M = 0.004
DROP_SPEED_M = 0.006  # sideways speed in contact that knocks the fastener off


@dataclass(frozen=True)
class Kind:
    """What distinguishes nut installation from screwing, to the simulator."""

    model: fz.ThreadModel
    engage_z: float  # height where the fastener meets its position
    contact_r: float  # within this distance a descending fastener lands on the position
    item_r: float  # drawn radius of the fastener
    item_inner: float
    item_rgb: tuple[float, float, float]
    hole_r: float


NUT = Kind(
    fz.M8_SELF_TAPPING_NUT, FLANGE_Z + 0.010, 0.0105, 0.0065, 0.0045, (0.90, 0.75, 0.15), 0.004
)
SCREW = Kind(fz.M6_SCREW, FLANGE_Z, 0.05, 0.005, 0.0025, (0.25, 0.45, 0.90), 0.003)


@dataclass
class Position:
    """One fastener position on the part, with its hidden truth."""

    spec_index: int
    side: Side
    slot: int
    nominal_xy: np.ndarray
    xy: np.ndarray
    sample: fz.ThreadSample
    rundown: fz.Rundown | None = None
    occupied: bool = False  # a fastener was left on it
    timed_out: bool = False


@dataclass
class ArmJob:
    """An arm's part of the current round."""

    target: Position | None = None
    loaded: bool = False
    engaged: Position | None = None
    blocked: bool = False
    spin_in_contact: int = 0
    attempts: int = 0  # times it landed off the position this round
    was_blocked: bool = False
    dropped: bool = False
    done: bool = False
