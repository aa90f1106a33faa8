"""Dual-side fastening: self-tapping nuts onto cast studs, or screws into tapped holes.

Each round both hands come back from the feeders with one fastener each (scripted) and
stop at a ready pose 35 mm above the *nominal* position of the next free stud on their
side; the part's real pose differs by its jitter. The policy then drives both arms:
align over the stud, descend until the fastener sits on it, hold the tool command on and
follow the fastener down while the runner tightens, then lift clear. An arm's round ends
when it holds nothing (tightened, left on the stud, or dropped) and is 20 mm above the
engagement plane.

Contact rules: descending onto a free position within the lead-in's capture radius
engages it (thread start, judged by the lateral error and speed at that tick); outside it
the fastener rests on the stud or flange (``blocked``). Turning the tool or dragging the
fastener sideways while blocked throws the fastener off (dropped: the position ends
missing). While engaged the socket is held on the stud's axis; lifting more than the
socket depth leaves the fastener where it is.
"""

from __future__ import annotations

import numpy as np

from robot.jobs import ErrorCode, Side, Task
from robot.sim import fastening as fz
from robot.sim.config import NUT_TIMES, SCREW_TIMES, SimConfig
from robot.sim.fasten_part import (
    APPROACH_M,
    CASTING_HALF,
    CASTING_XY,
    CLEARANCE_M,
    DROP_SPEED_M,
    FLANGE_Z,
    NUT,
    ROW_Y,
    SCREW,
    SOCKET_DEPTH_M,
    ArmJob,
    Position,
)
from robot.sim.render import WRIST_CAM_HEIGHT_M, Box, Disc, Prim, Scene, View
from robot.sim.task import SIDES, Result, SimTask, Streams

BG = (0.16, 0.17, 0.20)
CASTING_RGB = (0.70, 0.70, 0.68)
HOLE_RGB = (0.05, 0.05, 0.06)
TOOL_RGB = {Side.LEFT: (0.85, 0.20, 0.20), Side.RIGHT: (0.20, 0.75, 0.30)}
SOCKET_RGB = (0.35, 0.35, 0.38)


class FastenTask(SimTask):
    """Nut installation or screwing on both sides of a casting at once."""

    def __init__(self, cfg: SimConfig, streams: Streams) -> None:
        super().__init__(cfg, streams)
        self.kind = NUT if cfg.task is Task.NUT_INSTALL else SCREW
        self.times = NUT_TIMES if cfg.task is Task.NUT_INSTALL else SCREW_TIMES
        self.specs = cfg.recipe()
        self.positions: list[Position] = []
        self.jobs: dict[Side, ArmJob] = {s: ArmJob() for s in SIDES}
        self.fetched = {s: 0 for s in SIDES}
        self.version = 0
        self.expert_bias = np.zeros((2, 8, 3, 2))

    # -- episode structure -------------------------------------------------------------
    def reset(self) -> None:
        w, d = self.rng.world, self.d
        counts = {s: sum(1 for f in self.specs if f.side is s) for s in SIDES}
        self.n_rounds = max(counts.values())
        n_left, n_right = counts[Side.LEFT], counts[Side.RIGHT]
        noun, verb, place = (
            ("nut", "install", "on the casting")
            if self.cfg.task is Task.NUT_INSTALL
            else ("screw", "drive", "into the cover")
        )
        if n_left == n_right:
            self.instruction = f"{verb} {n_left} {noun}s per side {place}"
        else:
            self.instruction = (
                f"{verb} {n_left} {noun}s on the left and {n_right} on the right {place}"
            )
        # Part pose jitter (fixture clamping) and cast position tolerance per stud.
        self.part_xy = CASTING_XY + w.uniform(-0.006, 0.006, 2) * d
        self.part_yaw = float(w.uniform(-1.0, 1.0) * np.radians(1.2) * d)
        c, s = np.cos(self.part_yaw), np.sin(self.part_yaw)
        rot = np.array([[c, -s], [s, c]])
        for i, spec in enumerate(self.specs):
            order = sorted((f.position, j) for j, f in enumerate(self.specs) if f.side is spec.side)
            slot = [j for _, j in order].index(i)
            n = counts[spec.side]
            pitch = min(0.07, 0.30 / n)
            local = np.array(
                [(slot - (n - 1) / 2) * pitch, ROW_Y if spec.side is Side.LEFT else -ROW_Y]
            )
            tol = w.normal(0.0, 0.0003 * d, 2)
            self.positions.append(
                Position(
                    spec_index=i,
                    side=spec.side,
                    slot=slot,
                    nominal_xy=CASTING_XY + local,
                    xy=self.part_xy + rot @ local + tol,
                    sample=fz.sample_thread(self.kind.model, w, d),
                )
            )
        sigma = 0.00062 * (0.5 + 0.5 * d)
        self.expert_bias = self.rng.expert.normal(0.0, sigma, (2, 8, 3, 2))
        self.expert_bias[:, :, 1:] *= 0.6
        if not self.cfg.expert_error:
            self.expert_bias[:] = 0.0  # drawn all the same: the streams stay in step
        self.clock.add("walk", self.jitter(self.times.walk_s, self.times.walk_jitter_s))
        self.start_round()

    def start_round(self) -> None:
        self.round_ticks = 0
        w = self.rng.world
        longest = 0.0
        for side in SIDES:
            job = ArmJob()
            self.jobs[side] = job
            arm = self.arms[side]
            free = self.free_position(side)
            n_side = sum(1 for f in self.specs if f.side is side)
            if self.fetched[side] >= n_side or free is None:
                job.done = True
                arm.teleport(self._park(side))
                continue
            self.fetched[side] += 1
            misfeeds = 0
            while misfeeds < 3 and w.random() < 0.02 * self.d:
                misfeeds += 1
            longest = max(
                longest,
                self.jitter(self.times.fetch_s, self.times.fetch_jitter_s)
                + misfeeds * self.times.misfeed_s,
            )
            job.target = free
            job.loaded = misfeeds < 3  # three misfeeds in a row: come back empty
            job.done = not job.loaded
            ready = np.array([*free.nominal_xy, self.kind.engage_z + APPROACH_M])
            ready[:2] += w.normal(0.0, 0.001, 2)
            ready[2] += w.uniform(-0.002, 0.002)
            arm.teleport(ready if job.loaded else self._park(side))
            arm.tool_level = 0.0
            arm.tool_cmd = -1.0
        self.clock.add("fetch", longest)
        if all(j.done for j in self.jobs.values()):
            self.next_round()

    def _park(self, side: Side) -> np.ndarray:
        y = 0.25 if side is Side.LEFT else -0.25
        return np.array([0.35, y, self.kind.engage_z + 0.15])

    def free_position(self, side: Side) -> Position | None:
        return next((p for p in self._ordered(side) if not p.occupied), None)

    def _ordered(self, side: Side) -> list[Position]:
        return sorted((p for p in self.positions if p.side is side), key=lambda p: p.slot)

    def round_finished(self) -> bool:
        return all(j.done for j in self.jobs.values())

    def time_out_round(self) -> None:
        for side, job in self.jobs.items():
            if job.done:
                continue
            p = job.engaged
            if p is not None and p.rundown is not None and p.rundown.angle > 0:
                p.occupied = True
                p.timed_out = True
            elif job.target is not None and job.loaded:
                job.target.timed_out = True  # nut back to the feeder, position left empty
            job.done = True
            self.arms[side].teleport(self._park(side))
        self.version += 1

    # -- one arm, one tick -------------------------------------------------------------
    def step_arm(self, side: Side, a: np.ndarray) -> tuple[np.ndarray, bool]:
        arm, job = self.arms[side], self.jobs[side]
        rising = a[4] > 0 and arm.tool_cmd <= 0
        target, applied = arm.command(a)
        arm.tool_level = 0.0
        if job.engaged is not None:
            return applied, self._engaged(side, target, rising)
        k = self.kind
        z_floor = FLANGE_Z if self._on_casting(target) else 0.0
        near = self._nearest(side, target)
        job.blocked = False
        if near is not None and target[2] < k.engage_z and arm.pos[2] < k.engage_z - 1e-9:
            target[:2] = arm.pos[:2]  # low beside a stud: it stops the sideways move
        elif near is not None and target[2] <= k.engage_z:
            p, dist = near
            if p.occupied:
                target[2] = k.engage_z
            elif job.loaded and dist <= k.model.capture_mm * 1e-3:
                self._engage(side, p, target)
                arm.move_to(target)
                return applied, self._engaged(side, target, rising=False)
            else:
                target[2] = k.engage_z
                job.blocked = True
        target[2] = max(target[2], z_floor)
        arm.move_to(target)
        if job.blocked and job.loaded:
            if not job.was_blocked:
                job.attempts += 1
            job.spin_in_contact = job.spin_in_contact + 1 if a[4] > 0 else 0
            if job.spin_in_contact >= 2 or np.hypot(*arm.vel[:2]) > DROP_SPEED_M:
                job.loaded = False
                job.dropped = True
        job.was_blocked = job.blocked
        self._check_done(side)
        return applied, False

    def _engage(self, side: Side, p: Position, target: np.ndarray) -> None:
        arm = self.arms[side]
        err = np.hypot(*(target[:2] - p.xy)) * 1000.0
        speed = np.hypot(*(target[:2] - arm.pos[:2])) * 1000.0
        spec = self.specs[p.spec_index]
        p.rundown = fz.Rundown(
            model=self.kind.model,
            sample=p.sample,
            target_nm=0.5 * (spec.torque_min_nm + spec.torque_max_nm),
            angle_limit_deg=spec.angle_max_deg + 180.0,
            misalignment_mm=float(err + 0.5 * speed),
            noise_nm=self.kind.model.torque_noise_nm * (0.5 + 0.5 * self.d),
        )
        p.timed_out = False
        self.jobs[side].engaged = p
        target[:2] = p.xy
        target[2] = self.kind.engage_z

    def _engaged(self, side: Side, target: np.ndarray, rising: bool) -> bool:
        arm, job = self.arms[side], self.jobs[side]
        p = job.engaged
        assert p is not None and p.rundown is not None
        r = p.rundown
        top = self.kind.engage_z - self.kind.model.travel_m * r.depth_fraction
        z = max(float(target[2]), top)
        socket_on = z - top <= SOCKET_DEPTH_M
        turned = False
        if socket_on:
            arm.move_to(np.array([p.xy[0], p.xy[1], z]))
            if arm.tool_cmd > 0 and not r.finished:
                if r.starts == 0 or rising:
                    r.start()
                turned = r.run(self.rng.world) if r.starts > 0 else False
            elif rising and r.finished:
                r.start()  # a double hit
                turned = r.run(self.rng.world)
            if r.finished:
                job.loaded = False
        else:
            arm.move_to(target)
            if z - top > SOCKET_DEPTH_M + 0.002:  # lifted off the fastener
                job.engaged = None
                if r.angle > 0:
                    p.occupied = True
                    job.loaded = False
                    self.version += 1
                else:
                    p.rundown = None  # never turned: the socket's magnet takes it along
        arm.tool_level = 1.0 if turned else 0.0
        self._check_done(side)
        return turned

    def _check_done(self, side: Side) -> None:
        job, arm = self.jobs[side], self.arms[side]
        clear = arm.pos[2] >= self.kind.engage_z + CLEARANCE_M - 1e-9
        if not job.loaded and job.engaged is None and clear:
            job.done = True

    def _nearest(self, side: Side, xy: np.ndarray) -> tuple[Position, float] | None:
        best: tuple[Position, float] | None = None
        for p in self.positions:
            if p.side is not side:
                continue
            dist = float(np.hypot(xy[0] - p.xy[0], xy[1] - p.xy[1]))
            if dist <= self.kind.contact_r and (best is None or dist < best[1]):
                best = (p, dist)
        return best

    def _on_casting(self, xyz: np.ndarray) -> bool:
        c, s = np.cos(self.part_yaw), np.sin(self.part_yaw)
        dx, dy = xyz[0] - self.part_xy[0], xyz[1] - self.part_xy[1]
        lx, ly = c * dx + s * dy, -s * dx + c * dy
        return abs(lx) <= CASTING_HALF[0] and abs(ly) <= CASTING_HALF[1]

    # -- what the state, cameras and judge see -------------------------------------------
    def arm_signals(self, side: Side) -> tuple[float, float]:
        job = self.jobs[side]
        torque = 0.0
        if job.engaged is not None and job.engaged.rundown is not None:
            spec = self.specs[job.engaged.spec_index]
            torque = job.engaged.rundown.torque / spec.torque_max_nm
        return float(torque), 1.0 if job.loaded else 0.0

    def progress(self) -> float:
        return sum(1 for p in self.positions if p.occupied) / max(len(self.positions), 1)

    def aim_of(self, side: Side) -> np.ndarray | None:
        """A loaded hand not yet on a stud: to the next free position."""
        job, p = self.jobs[side], self.free_position(side)
        if job.loaded and job.engaged is None and not job.done and p is not None:
            return p.xy - self.arms[side].pos[:2]
        return None

    def scene(self) -> Scene:
        k = self.kind
        static: list[Prim] = [
            Box(
                self.part_xy[0],
                self.part_xy[1],
                FLANGE_Z,
                *CASTING_HALF,
                self.part_yaw,
                CASTING_RGB,
            )
        ]
        for p in self.positions:
            x, y = float(p.xy[0]), float(p.xy[1])
            if p.occupied and p.rundown is not None:
                zt = k.engage_z - k.model.travel_m * p.rundown.depth_fraction + 0.008
                static.append(Disc(x, y, zt, k.item_r, k.item_rgb))
                static.append(Disc(x, y, zt, k.item_inner * 0.6, HOLE_RGB))
            else:
                static.append(Disc(x, y, k.engage_z, k.hole_r, HOLE_RGB))
        head: list[Prim] = []
        overlay: dict[str, list[Prim]] = {}
        wrists: dict[str, View] = {}
        for side in SIDES:
            arm, job = self.arms[side], self.jobs[side]
            x, y, z = (float(v) for v in arm.pos)
            head.append(Disc(x, y, 0.5, 0.009 + 0.1 * max(z - FLANGE_Z, 0.0), TOOL_RGB[side]))
            # Thin outlines only, so that the stud stays visible through and around them.
            tool: list[Prim] = [Disc(0.0, 0.0, 0.0, 0.0100, SOCKET_RGB, inner=0.0092)]
            if job.loaded or job.engaged is not None:
                head.append(Disc(x, y, 0.5, 0.004, k.item_rgb))
                tool.append(Disc(0.0, 0.0, 0.0, k.item_r, k.item_rgb, inner=k.item_r - 0.0009))
            name = f"wrist_{side.value}"
            overlay[name] = tool
            wrists[name] = View(x, y, z + WRIST_CAM_HEIGHT_M, arm.yaw)
        return Scene(
            static=static,
            dynamic=[],
            version=self.version,
            background=BG,
            head=View(0.50, 0.0, 1.0, 0.0, half_m=0.26),
            wrists=wrists,
            overlay=overlay,
            head_only=head,
        )

    def result(self) -> Result:
        results = []
        for p in self.positions:  # built in the recipe's order
            spec = self.specs[p.spec_index]
            if p.occupied:
                results.append(fz.judge(spec, p.rundown, timed_out=p.timed_out))
            elif p.timed_out:
                res = fz.judge(spec, None)
                res.error_code = int(ErrorCode.FASTEN_TIMEOUT)
                results.append(res)
            else:
                results.append(fz.judge(spec, None))
        first_bad = next((r for r in results if not r.ok), None)
        return Result(
            success=first_bad is None,
            error_code=first_bad.error_code if first_bad else 0,
            fasteners=results,
        )
