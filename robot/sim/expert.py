"""The scripted experts: what a careful programmer's controller would command, per state.

Each expert is a pure function of the task's current state (it reads the hidden truth, so
it is "privileged"), which is what makes it usable both for demonstrations and for
relabelling states a learned policy visits. Its imperfection is realistic and seeded: it
aims at the true feature plus a perception error drawn per position and per attempt at
reset (``expert_bias``), growing with difficulty. When its aim is outside the lead-in it
lands beside the stud, lifts, and tries again with its next (smaller) error; when it is
inside the lead-in but outside the clean-start tolerance the thread cross-threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from robot.jobs import Side
from robot.schema import ACTION_DIM, MAX_STEP_M, MAX_YAW_STEP
from robot.sim.arms import ARM_DIM

if TYPE_CHECKING:
    from robot.sim.fasten import FastenTask
    from robot.sim.handling import HandlingTask

ALIGN_TOL_M = 0.0005
GAIN = 0.6
FOLLOW_M = 0.003  # how hard the expert presses down while the runner turns


def _toward(err: np.ndarray, gain: float = GAIN, limit: float = MAX_STEP_M) -> np.ndarray:
    step = gain * err
    n = float(np.linalg.norm(step))
    return step * (limit / n) if n > limit else step


def fasten_expert(task: FastenTask) -> np.ndarray:
    """Both arms' actions for a nut installation or screwing task."""
    from robot.sim.fasten import APPROACH_M, CLEARANCE_M

    out = np.zeros(ACTION_DIM, dtype=np.float32)
    for i, side in enumerate((Side.LEFT, Side.RIGHT)):
        a = out[i * ARM_DIM : (i + 1) * ARM_DIM]
        a[4] = -1.0
        arm, job, kind = task.arms[side], task.jobs[side], task.kind
        h = float(arm.pos[2] - kind.engage_z)
        if job.done:
            continue
        if job.engaged is not None:
            r = job.engaged.rundown
            if job.loaded and r is not None and not r.finished:
                a[2], a[4] = -FOLLOW_M, 1.0  # hold the trigger, follow the fastener down
            else:
                a[2] = MAX_STEP_M  # released: lift clear
            continue
        if not job.loaded:
            a[2] = MAX_STEP_M if h < CLEARANCE_M + 0.002 else 0.0
            continue
        p = task._free(side)
        if p is None:
            continue
        if job.blocked:
            a[2] = 0.006  # landed beside the stud: lift and look again
            continue
        bias = task.expert_bias[i, p.slot, min(job.attempts, 2)]
        err = (p.xy + bias) - arm.pos[:2]
        a[:2] = _toward(err)
        if float(np.linalg.norm(err)) > ALIGN_TOL_M:
            if h < 0.008:
                a[2] = 0.004
            elif h > APPROACH_M + 0.01:
                a[2] = -min(MAX_STEP_M, h - APPROACH_M)
        else:
            a[2] = -min(MAX_STEP_M, 0.5 * h + 0.002)
    return out


def handling_expert(task: HandlingTask) -> np.ndarray:
    """Both arms' actions for the conveyor-to-fixture transfer."""
    from robot.sim.handling import expert_arm_actions

    out = np.zeros(ACTION_DIM, dtype=np.float32)
    for i, a in enumerate(expert_arm_actions(task)):
        out[i * ARM_DIM : (i + 1) * ARM_DIM] = a
    out[3] = np.clip(out[3], -MAX_YAW_STEP, MAX_YAW_STEP)
    out[8] = np.clip(out[8], -MAX_YAW_STEP, MAX_YAW_STEP)
    return out
