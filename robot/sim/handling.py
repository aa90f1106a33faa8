"""Material handling: take a casting off the conveyor with both hands, put it in the fixture.

Round 0 (pick): the casting stops on the conveyor with pose jitter; both grippers start
50 mm above its lugs' nominal positions. The policy aligns each gripper (x, y and yaw) with
its lug, descends, closes and, once both hands hold, lifts the casting 40 mm.
Scripted: the robot turns to the fixture carrying the casting (a grasp that was off by
more than ``GOOD_GRASP_MM`` or ``GOOD_GRASP_DEG`` slips on the way: drop).
Round 1 (place): the fixture appears with the stance's jitter; the casting must be
aligned so that both lugs enter their nests (within ``NEST_CAPTURE_MM``), lowered until
seated, released, and the hands lifted clear.

Failures: releasing more than 15 mm above support or lifting with one hand (drop);
releasing on the nest tops (misplaced); pressing down on a nest for ``PUSH_LIMIT`` ticks
(collision: protective stop); pulling the hands apart while holding (drop).
"""

from __future__ import annotations

import math

import numpy as np

from robot.jobs import ErrorCode, Side
from robot.sim.config import HANDLING_TIMES, SimConfig
from robot.sim.handling_part import (
    APPROACH_M,
    BODY_HALF,
    BODY_TOP,
    FINGER_CAPTURE_MM,
    GOOD_GRASP_DEG,
    GOOD_GRASP_MM,
    GRIP_RATE,
    HOME_XY,
    LIFT_M,
    LUG_HALF,
    LUG_TOP,
    LUG_Y,
    LUG_Z,
    NEST_CAPTURE_MM,
    NEST_TOP,
    ONE_HAND_LIFT_M,
    PUSH_LIMIT,
    Grip,
)
from robot.sim.render import Box, Prim, Scene, View
from robot.sim.task import SIDES, Result, SimTask, Streams

WRIST_HEIGHT_M = 0.12  # forearm camera, high enough to see the nest past the lug
BG = (0.14, 0.15, 0.17)
BELT_RGB = (0.22, 0.28, 0.24)
PLATE_RGB = (0.32, 0.38, 0.48)
NEST_RGB = (0.95, 0.55, 0.10)
BODY_RGB = (0.72, 0.72, 0.70)
LUG_RGB = (0.10, 0.10, 0.12)
FINGER_RGB = (0.30, 0.30, 0.34)
TOOL_RGB = {Side.LEFT: (0.85, 0.20, 0.20), Side.RIGHT: (0.20, 0.75, 0.30)}


class HandlingTask(SimTask):
    """Conveyor-to-fixture transfer of one casting."""

    def __init__(self, cfg: SimConfig, streams: Streams) -> None:
        super().__init__(cfg, streams)
        self.times = HANDLING_TIMES
        self.n_rounds = 2
        self.instruction = "move the casting from the conveyor to the fixture"
        self.grips = {s: Grip() for s in SIDES}
        self.cast_xy = HOME_XY.copy()
        self.cast_yaw = 0.0
        self.cast_z = 0.0  # base height above the current support surface
        self.fix_xy = HOME_XY.copy()
        self.fix_yaw = 0.0
        self.failure: ErrorCode | None = None
        self.placed = False
        self.released = False
        self.push = 0
        self.place_attempts = 0
        self.hold_ref: tuple[np.ndarray, float, float] | None = None
        self.both_held_ticks = 0  # consecutive ticks with the casting in both hands
        self.seated_ticks = 0  # consecutive ticks held in both hands, seated in the nests

    # -- structure ----------------------------------------------------------------------
    def reset(self) -> None:
        w, d = self.rng.world, self.d
        self.cast_xy = HOME_XY + w.uniform(-0.012, 0.012, 2) * d
        self.cast_yaw = float(np.radians(w.uniform(-4.0, 4.0) * d))
        self.fix_xy = HOME_XY + w.uniform(-0.008, 0.008, 2) * d
        self.fix_yaw = float(np.radians(w.uniform(-2.0, 2.0) * d))
        s = 0.5 + 0.5 * d
        self.pick_bias = self.rng.expert.normal(0.0, 1.0, (2, 3, 3)) * [
            2.2e-3 * s,
            2.2e-3 * s,
            np.radians(1.5) * s,
        ]
        self.place_bias = self.rng.expert.normal(0.0, 1.0, (3, 3)) * [
            1.2e-3 * s,
            1.2e-3 * s,
            np.radians(0.5) * s,
        ]
        self.pick_bias[:, 1:] *= 0.6
        self.place_bias[1:] *= 0.6
        if not self.cfg.expert_error:
            self.pick_bias[:] = 0.0  # drawn all the same: the streams stay in step
            self.place_bias[:] = 0.0
        self.clock.add("walk", self.jitter(self.times.walk_s, self.times.walk_jitter_s))
        self.start_round()

    def start_round(self) -> None:
        self.round_ticks = 0
        w = self.rng.world
        if self.round == 0:
            for side in SIDES:
                ready = self.nominal_lug(side, HOME_XY, 0.0)
                ready[:2] += w.normal(0.0, 0.001, 2)
                ready[2] = LUG_Z + APPROACH_M
                self.arms[side].teleport(ready)
                self.arms[side].tool_level = 0.0
            return
        self.clock.add("transfer", self.jitter(self.times.fetch_s, self.times.fetch_jitter_s))
        if not all(g.good for g in self.grips.values()):
            self.failure = ErrorCode.DROP  # the poor grasp slipped on the way
            self.done_now()
            return
        # Carried to the nominal fixture pose (the real fixture differs by the stance).
        self.cast_xy = HOME_XY + w.normal(0.0, 0.0015, 2)
        self.cast_yaw = float(np.radians(w.normal(0.0, 0.5)))
        self.cast_z = LIFT_M
        for side in SIDES:
            g = self.grips[side]
            assert g.offset is not None
            pos = self.nominal_lug(side, self.cast_xy, self.cast_yaw) - g.offset
            pos[2] = self.cast_z + LUG_Z
            self.arms[side].teleport(pos, yaw=self.cast_yaw)
            self.arms[side].tool_level = 1.0
        self.hold_ref = self._hold_ref()

    def done_now(self) -> None:
        self.clock.add("verify", self.jitter(self.times.verify_s, self.times.verify_jitter_s))
        self.done = True
        self.round = self.n_rounds

    @staticmethod
    def nominal_lug(side: Side, xy: np.ndarray, yaw: float) -> np.ndarray:
        sign = 1.0 if side is Side.LEFT else -1.0
        c, s = math.cos(yaw), math.sin(yaw)
        return np.array([xy[0] - s * sign * LUG_Y, xy[1] + c * sign * LUG_Y, LUG_Z])

    def lug(self, side: Side) -> np.ndarray:
        p = self.nominal_lug(side, self.cast_xy, self.cast_yaw)
        p[2] = self.cast_z + LUG_Z
        return p

    def nest(self, side: Side) -> np.ndarray:
        return self.nominal_lug(side, self.fix_xy, self.fix_yaw)

    def nest_error_mm(self) -> float:
        return 1000.0 * max(float(np.hypot(*(self.lug(s)[:2] - self.nest(s)[:2]))) for s in SIDES)

    def round_finished(self) -> bool:
        if self.failure is not None:
            return True
        if self.round == 0:
            return all(g.holding for g in self.grips.values()) and self.cast_z >= LIFT_M - 1e-9
        clear = all(self.arms[s].pos[2] >= BODY_TOP + 0.02 for s in SIDES)
        return self.released and clear

    def next_round(self) -> None:
        if self.failure is not None:
            if not self.done:
                self.done_now()
            return
        super().next_round()

    def time_out_round(self) -> None:
        if self.failure is None:
            self.failure = ErrorCode.HANDLING_TIMEOUT

    # -- one tick ---------------------------------------------------------------------------
    def tick_phase(self, busy: bool) -> str:
        return "align" if self.round == 0 else "place"

    def step_arm(self, side: Side, a: np.ndarray) -> tuple[np.ndarray, bool]:
        arm, g = self.arms[side], self.grips[side]
        target, applied = arm.command(a)
        before = arm.tool_level
        rate = GRIP_RATE if a[4] > 0 else (-GRIP_RATE if a[4] < 0 else 0.0)
        arm.tool_level = float(np.clip(before + rate, 0.0, 1.0))
        both = all(x.holding for x in self.grips.values())
        if g.holding and not both and arm.tool_level < 0.5:
            g.holding = False  # let go of a lug still resting on the belt
        if self.round == 0 and not both:
            target[2] = max(target[2], self._floor(target))
        arm.move_to(target)  # a casting held by both hands follows in ``after_arms``
        if self.round == 0 and not g.holding and before < 1.0 <= arm.tool_level:
            self._try_grasp(side)
        return applied, False

    def _floor(self, xyz: np.ndarray) -> float:
        """Lowest the fingers get here: around a lug, on the casting, or on the belt."""
        for side in SIDES:
            if 1000.0 * float(np.hypot(*(xyz[:2] - self.lug(side)[:2]))) <= FINGER_CAPTURE_MM:
                return 0.02
        c, s = math.cos(self.cast_yaw), math.sin(self.cast_yaw)
        dx, dy = xyz[0] - self.cast_xy[0], xyz[1] - self.cast_xy[1]
        lx, ly = c * dx + s * dy, -s * dx + c * dy
        if abs(lx) <= BODY_HALF[0] and abs(ly) <= BODY_HALF[1]:
            return BODY_TOP
        if abs(lx) <= LUG_HALF[0] + 0.01 and abs(ly) <= LUG_Y + LUG_HALF[1]:
            return LUG_TOP
        return 0.005

    def _try_grasp(self, side: Side) -> None:
        arm, g = self.arms[side], self.grips[side]
        lug = self.lug(side)
        e_mm = 1000.0 * float(np.hypot(*(arm.pos[:2] - lug[:2])))
        yaw_deg = abs(math.degrees(arm.yaw - self.cast_yaw))
        height_ok = abs(arm.pos[2] - lug[2]) <= 0.012
        if e_mm <= FINGER_CAPTURE_MM and yaw_deg <= 12.0 and height_ok:
            g.holding = True
            g.good = e_mm <= GOOD_GRASP_MM and yaw_deg <= GOOD_GRASP_DEG
            g.offset = lug - arm.pos
            if all(x.holding for x in self.grips.values()):
                self.hold_ref = self._hold_ref()
        else:
            g.attempts += 1  # closed on air: open and try again

    def _hold_ref(self) -> tuple[np.ndarray, float, float]:
        left, right = self.arms[Side.LEFT], self.arms[Side.RIGHT]
        sep = float(np.linalg.norm(left.pos - right.pos))
        return (left.pos + right.pos) / 2, (left.yaw + right.yaw) / 2, sep

    def after_arms(self, action: np.ndarray) -> None:
        """Carry the casting with both hands; judge one-handed lifts, pushes and releases."""
        holders = [s for s in SIDES if self.grips[s].holding]
        self.both_held_ticks = self.both_held_ticks + 1 if len(holders) == 2 else 0
        seated = self.round == 1 and len(holders) == 2 and self.cast_z <= 1e-6
        self.seated_ticks = self.seated_ticks + 1 if seated else 0
        if self.round == 0 and len(holders) == 1:
            s, g = holders[0], self.grips[holders[0]]
            assert g.offset is not None
            # Measured from where the hand closed, which may be up to the capture height
            # above the lug's middle: a grasp there is not yet a lift.
            grasped_at = self.lug(s)[2] - g.offset[2]
            if self.arms[s].pos[2] - grasped_at > ONE_HAND_LIFT_M:
                self.failure = ErrorCode.DROP  # lifted by one lug: it tips off the hand
            return
        if len(holders) < 2 or self.hold_ref is None:
            return
        ref_mid, ref_yaw, ref_sep = self.hold_ref
        left, right = self.arms[Side.LEFT], self.arms[Side.RIGHT]
        if abs(float(np.linalg.norm(left.pos - right.pos)) - ref_sep) > 0.008:
            self.failure = ErrorCode.DROP  # hands pulled apart or squeezed: it slips
            return
        move = (left.pos + right.pos) / 2 - ref_mid
        turn = (left.yaw + right.yaw) / 2 - ref_yaw
        want_xy, want_yaw = self.cast_xy + move[:2], self.cast_yaw + turn
        want_z = self.cast_z + float(move[2])
        xy, yaw, z_min = want_xy, want_yaw, 0.0
        blocked = False
        if self.round == 1:
            if self.cast_z < NEST_TOP - 1e-6:
                xy, yaw = self.cast_xy, self.cast_yaw  # lugs inside the nests
            elif self._nest_error_at(want_xy, want_yaw) > NEST_CAPTURE_MM:
                z_min = NEST_TOP  # resting on the nests' tops
                blocked = want_z < z_min
        z = max(want_z, z_min)
        # Constraints push back on both hands by what they took off the casting.
        dxy, dz, dyaw = xy - want_xy, z - want_z, yaw - want_yaw
        for arm in (left, right):
            arm.pos = arm.pos + np.array([dxy[0], dxy[1], dz])
            arm.yaw += dyaw
        self.cast_xy, self.cast_yaw, self.cast_z = np.asarray(xy, dtype=float), float(yaw), z
        self.hold_ref = self._hold_ref()
        self.push = self.push + 1 if blocked else 0
        if self.push == 1:
            self.place_attempts += 1
        if self.push >= PUSH_LIMIT:
            self.failure = ErrorCode.COLLISION  # protective stop: force limit on the nests
            return
        if any(self.arms[s].tool_level < 0.5 for s in SIDES):
            self._release()

    def _nest_error_at(self, xy: np.ndarray, yaw: float) -> float:
        old = self.cast_xy, self.cast_yaw
        self.cast_xy, self.cast_yaw = xy, yaw
        try:
            return self.nest_error_mm()
        finally:
            self.cast_xy, self.cast_yaw = old

    def _release(self) -> None:
        for g in self.grips.values():
            g.holding = False
        if self.round == 0:
            if self.cast_z > 0.015:
                self.failure = ErrorCode.DROP
            self.cast_z = 0.0  # put back on the belt: pick again
            return
        self.released = True
        err = self.nest_error_mm()
        support = 0.0 if err <= NEST_CAPTURE_MM else NEST_TOP
        if self.cast_z - support > 0.015:
            self.failure = ErrorCode.DROP
        elif err <= NEST_CAPTURE_MM:
            self.placed = True  # the nests centre the lugs
            self.cast_xy, self.cast_yaw, self.cast_z = self.fix_xy.copy(), self.fix_yaw, 0.0
        else:
            self.failure = ErrorCode.MISPLACED

    # -- state, cameras, judge --------------------------------------------------------------
    def arm_signals(self, side: Side) -> tuple[float, float]:
        holding = 1.0 if self.grips[side].holding else 0.0
        loaded = holding if all(g.holding for g in self.grips.values()) else 0.0
        return loaded, holding

    def progress(self) -> float:
        if self.placed:
            return 1.0
        return 0.5 if self.round >= 1 else 0.0

    def aim_of(self, side: Side) -> np.ndarray | None:
        """Pick: the hand to its lug; place: its lug to its nest."""
        if self.round == 0 and not self.grips[side].holding:
            return self.lug(side)[:2] - self.arms[side].pos[:2]
        if self.round == 1 and not self.released:
            return self.nest(side)[:2] - self.lug(side)[:2]
        return None

    def scene(self) -> Scene:
        static: list[Prim] = []
        if self.round == 0:
            static.append(Box(0.50, 0.0, 0.0, 0.16, 0.40, 0.0, BELT_RGB))
        else:
            static.append(
                Box(self.fix_xy[0], self.fix_xy[1], 0.0, 0.19, 0.21, self.fix_yaw, PLATE_RGB)
            )
            c, s = math.cos(self.fix_yaw), math.sin(self.fix_yaw)
            for side in SIDES:
                nx, ny, _ = self.nest(side)
                for sign in (-1.0, 1.0):
                    ox = sign * (LUG_HALF[0] + 0.009)
                    static.append(
                        Box(
                            nx + c * ox,
                            ny + s * ox,
                            NEST_TOP,
                            0.005,
                            LUG_HALF[1],
                            self.fix_yaw,
                            NEST_RGB,
                        )
                    )
        z = self.cast_z
        dynamic: list[Prim] = [
            Box(self.cast_xy[0], self.cast_xy[1], z + BODY_TOP, *BODY_HALF, self.cast_yaw, BODY_RGB)
        ]
        for side in SIDES:
            lx, ly, _ = self.lug(side)
            dynamic.append(Box(lx, ly, z + LUG_TOP, *LUG_HALF, self.cast_yaw, LUG_RGB))
        head: list[Prim] = []
        overlay: dict[str, list[Prim]] = {}
        wrists: dict[str, View] = {}
        for side in SIDES:
            arm = self.arms[side]
            x, y, az = (float(v) for v in arm.pos)
            head.append(
                Box(x, y, 0.5, 0.006, 0.022 - 0.012 * arm.tool_level, arm.yaw, TOOL_RGB[side])
            )
            gap = 0.024 - 0.012 * arm.tool_level
            name = f"wrist_{side.value}"
            overlay[name] = [
                Box(0.0, gap, 0.0, 0.008, 0.002, 0.0, FINGER_RGB),
                Box(0.0, -gap, 0.0, 0.008, 0.002, 0.0, FINGER_RGB),
            ]
            wrists[name] = View(x, y, az + WRIST_HEIGHT_M, arm.yaw)
        return Scene(
            static=static,
            dynamic=dynamic,
            version=self.round,
            background=BG,
            head=View(0.50, 0.0, 1.0, 0.0, half_m=0.26),
            wrists=wrists,
            overlay=overlay,
            head_only=head,
            wrist_height=WRIST_HEIGHT_M,
        )

    def result(self) -> Result:
        if self.placed and self.failure is None:
            return Result(success=True, error_code=0, fasteners=[])
        code = self.failure or ErrorCode.HANDLING_TIMEOUT
        return Result(success=False, error_code=int(code), fasteners=[])
