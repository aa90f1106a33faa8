"""The scripted experts: what a careful programmer's controller would command, per state.

Each expert is a pure function of the task's current state (it reads the hidden truth, so
it is "privileged"; the state includes each arm's last commanded step), which is what
makes it usable both for demonstrations and for relabelling states a learned policy
visits. Its imperfection is realistic and seeded: it aims at the true feature plus a
perception error drawn per position and per attempt at reset (``expert_bias``), growing
with difficulty. When its aim is outside the lead-in it lands beside the stud, lifts, and
tries again with its next (smaller) error; when it is inside the lead-in but outside the
clean-start tolerance the thread cross-threads. With ``SimConfig.expert_error`` False the
drawn errors are zero: a teacher for training.
"""

from __future__ import annotations

import numpy as np

from robot.jobs import Side
from robot.schema import ACTION_DIM, MAX_STEP_M, MAX_YAW_STEP
from robot.sim.arms import ARM_DIM
from robot.sim.fasten import FastenTask
from robot.sim.fasten_part import APPROACH_M, CLEARANCE_M
from robot.sim.handling import HandlingTask
from robot.sim.handling_part import NEST_TOP
from robot.sim.task import SimTask

ALIGN_TOL_M = 0.0005
GAIN = 0.6
FOLLOW_M = 0.003  # how hard the expert presses down while the runner turns
# The last FINE_ZONE_M above the stud are taken at FINE_STEP_M a tick (ten ticks), the
# way a fitter slows down before a thread start: a controller that re-plans from its
# cameras every few ticks then starts the thread from a look taken close to the stud,
# where its residual offset is small and its wrist image is sharpest.
FINE_ZONE_M = 0.020
FINE_STEP_M = 0.002
# Both hands hold the casting this many ticks before it is lifted, and it sits in the
# nests this many before it is let go. A controller that plans chunks ahead would
# otherwise lift in the same plan as the grasps (a grasp that closed on air then tips
# the casting off one hand) or open in the same plan as the lowering (a casting caught
# on a nest's top is then misplaced). Eight ticks (0.27 s) cover a re-plan interval
# plus an 80 ms inference delay, so each decision comes from a look taken after the
# event it depends on.
SETTLE_TICKS = 8
# A gripper starts down once within these of its lug and keeps correcting on the way:
# the grasp needs 6 mm and 5 degrees, and a descent held back for a tighter alignment
# than a camera can confirm leaves a controller hovering, re-aiming below its own noise.
PICK_ALIGN_M = 0.002
PICK_ALIGN_RAD = float(np.radians(1.5))
# The fastening arms' vertical step changes by at most this much a tick, as a real arm's
# speed does (3 mm per tick per tick: 0 to full speed in four ticks). Without it the
# teacher turned from following a nut down to lifting clear at full speed in one tick,
# and so did a policy trained on it: where a new chunk saw a finished nut that the
# chunk before it could not, the boundary between them jumped at full speed. With it
# the reaction is a ramp, and a chunk that continues from its committed prefix
# continues from the speed the arm is at.
Z_ACCEL_M = 0.003


def _toward(err: np.ndarray, gain: float = GAIN, limit: float = MAX_STEP_M) -> np.ndarray:
    step = gain * err
    n = float(np.linalg.norm(step))
    return step * (limit / n) if n > limit else step


def _turn(yaw_err: float) -> float:
    """Wrist yaw step toward ``yaw_err`` radians, within the schema's limit."""
    return float(np.clip(GAIN * yaw_err, -MAX_YAW_STEP, MAX_YAW_STEP))


def _retry_bias(biases: np.ndarray, attempts: int) -> np.ndarray:
    """The perception error for this attempt; after the drawn ones it keeps halving."""
    last = len(biases) - 1
    return biases[min(attempts, last)] * 0.5 ** max(attempts - last, 0)


def fasten_expert(task: FastenTask) -> np.ndarray:
    """Both arms' actions for a nut installation or screwing task: ``fasten_target``
    with each arm's vertical step ramped from its last command by ``Z_ACCEL_M``."""
    out = fasten_target(task)
    for i, side in enumerate((Side.LEFT, Side.RIGHT)):
        dz = task.arms[side].dz_cmd
        k = i * ARM_DIM + 2
        out[k] = np.clip(out[k], dz - Z_ACCEL_M, dz + Z_ACCEL_M)
    return out


def fasten_target(task: FastenTask) -> np.ndarray:
    """Both arms' actions for a fastening task before the vertical ramp: what the expert
    wants each arm to do now (a full-speed lift once a fastener is finished, say)."""
    out = np.zeros(ACTION_DIM, dtype=np.float32)
    for i, side in enumerate((Side.LEFT, Side.RIGHT)):
        _fasten_arm(task, i, side, out[i * ARM_DIM : (i + 1) * ARM_DIM])
    return out


def _fasten_arm(task: FastenTask, i: int, side: Side, a: np.ndarray) -> None:
    """Fill arm ``i``'s action ``a`` (released tool, no motion, on entry)."""
    a[4] = -1.0
    arm, job, kind = task.arms[side], task.jobs[side], task.kind
    h = float(arm.pos[2] - kind.engage_z)
    if job.done:
        return
    if job.engaged is not None:
        r = job.engaged.rundown
        if job.loaded and r is not None and not r.finished:
            a[2], a[4] = -FOLLOW_M, 1.0  # hold the trigger, follow the fastener down
        else:
            a[2] = MAX_STEP_M  # released: lift clear
        return
    if not job.loaded:
        a[2] = MAX_STEP_M if h < CLEARANCE_M + 0.002 else 0.0
        return
    p = task.free_position(side)
    if p is None:
        return
    if job.blocked:
        a[2] = 0.006  # landed beside the stud: lift and look again
        return
    bias = _retry_bias(task.expert_bias[i, p.slot], job.attempts)
    err = (p.xy + bias) - arm.pos[:2]
    a[:2] = _toward(err)
    a[2] = _approach_dz(h, float(np.linalg.norm(err)) <= ALIGN_TOL_M)


def _approach_dz(h: float, aligned: bool) -> float:
    """Vertical step of a tool ``h`` metres above where it makes contact (the engagement
    plane of a fastener, the nests' tops for a carried casting).

    Misaligned: come down to the approach height, or below it hold the height, while the
    sideways correction runs. Aligned: fast down to the fine zone, then ``FINE_STEP_M``
    a tick, so that the last look before contact is taken close to the target.
    """
    if not aligned:
        return -min(MAX_STEP_M, h - APPROACH_M) if h > APPROACH_M + 0.01 else 0.0
    if h > FINE_ZONE_M:
        return -min(MAX_STEP_M, 0.5 * h + 0.002, h - FINE_ZONE_M + FINE_STEP_M)
    return -FINE_STEP_M


def handling_expert(task: HandlingTask) -> np.ndarray:
    """Both arms' actions for the conveyor-to-fixture transfer."""
    return _pick(task) if task.round == 0 else _place(task)


def _pick(task: HandlingTask) -> np.ndarray:
    """Round 0: each hand aims at its lug, descends, closes; both lift together."""
    out = np.zeros(ACTION_DIM, dtype=np.float32)
    both = all(g.holding for g in task.grips.values())
    for i, side in enumerate((Side.LEFT, Side.RIGHT)):
        a = out[i * ARM_DIM : (i + 1) * ARM_DIM]
        arm, g = task.arms[side], task.grips[side]
        if g.holding:
            a[4] = 1.0
            a[2] = MAX_STEP_M if both and task.both_held_ticks >= SETTLE_TICKS else 0.0
            continue
        bias = _retry_bias(task.pick_bias[i], g.attempts)
        lug = task.lug(side)
        err = lug[:2] + bias[:2] - arm.pos[:2]
        yaw_err = task.cast_yaw + bias[2] - arm.yaw
        h = float(arm.pos[2] - lug[2])
        a[4] = -1.0
        if arm.tool_level > 0.0 and (h > 0.002 or arm.tool_level >= 1.0):
            a[2] = 0.004 if arm.tool_level >= 1.0 else 0.0  # closed on air: open, lift
            continue
        aligned = float(np.linalg.norm(err)) <= PICK_ALIGN_M and abs(yaw_err) <= PICK_ALIGN_RAD
        if aligned and h <= 0.001:
            a[4] = 1.0
            continue
        a[:2] = _toward(err)  # aiming, and still correcting on the way down
        a[3] = _turn(yaw_err)
        if aligned:
            a[2] = -min(MAX_STEP_M, 0.5 * h + 0.002)
        elif h < 0.015:
            a[2] = 0.004
    return out


def _place(task: HandlingTask) -> np.ndarray:
    """Round 1: both hands move the casting together over the nests, lower, let go."""
    out = np.zeros(ACTION_DIM, dtype=np.float32)
    if task.released:
        out[2] = out[7] = MAX_STEP_M
        out[4] = out[9] = -1.0
        return out
    out[4] = out[9] = 1.0
    bias = _retry_bias(task.place_bias, task.place_attempts)
    err = task.fix_xy + bias[:2] - task.cast_xy
    yaw_err = task.fix_yaw + bias[2] - task.cast_yaw
    seated = task.cast_z <= 1e-6
    move = np.zeros(3)
    turn = 0.0
    if task.push > 0:
        move[2] = 0.006  # resting on a nest: lift and aim again
    elif seated:
        if task.seated_ticks >= SETTLE_TICKS:  # released from a look taken once seated
            out[4] = out[9] = -1.0
    elif task.cast_z < NEST_TOP - 1e-6:
        move[2] = -min(MAX_STEP_M, task.cast_z + 0.002)
    else:
        move[:2] = _toward(err)
        turn = _turn(yaw_err)
        if float(np.linalg.norm(err)) > 0.0008 or abs(yaw_err) > np.radians(0.3):
            if task.cast_z < NEST_TOP + 0.01:
                move[2] = 0.004
        else:
            move[2] = _approach_dz(task.cast_z - NEST_TOP, True)  # slow over the nests
    for i in range(2):
        out[i * ARM_DIM : i * ARM_DIM + 3] = move
        out[i * ARM_DIM + 3] = turn
    return out


def expert_action(task: SimTask) -> np.ndarray:
    """The scripted expert's action for ``task``'s current state (uses hidden truth)."""
    if isinstance(task, HandlingTask):
        return handling_expert(task)
    if isinstance(task, FastenTask):
        return fasten_expert(task)
    raise TypeError(f"no scripted expert for {type(task).__name__}")
