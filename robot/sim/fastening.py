"""Fastening physics: the torque-angle curve of one fastener and the runner that drives it.

A fastener's angle counts from thread start (the moment the tool first turns it on its
stud or hole). Its true torque follows:

* run-down: prevailing torque rising linearly from ``prevailing_start_nm`` to
  ``prevailing_seat_nm`` as the thread forms (self-tapping nut) or runs (tapped hole),
  with a small once-per-turn ripple;
* seating (snug) at ``seat_angle_deg``; after it the clamped joint is elastic, torque
  rising at ``joint_rate_nm_per_deg``;
* a crooked start (lateral error at thread start above the fastener's clean-start
  tolerance) cross-threads: from an onset angle the torque climbs steeply, long before
  seating (the early spike);
* once the torque reaches the thread's strip torque the thread shears: torque collapses
  to a residual and stays there.

The runner's tightening program: run-down at ``rundown_deg_per_tick``, switch to the
final speed once the measured torque passes half the target, shut off at the target
(mid-window of the recipe). Monitors end a run early: a torque drop to half the peak
(stripped thread) or the angle limit. A second start on an already tightened fastener
(a "double hit") begins with the static break-away torque, which is above the target:
the classic over-torque.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from robot.jobs import ErrorCode, FastenerResult, FastenerSpec

SUBSTEP_DEG = 5.0  # angle resolution of the runner's controller and of the trace
SWITCH_FRACTION = 0.5  # of target: run-down -> final speed
REACTION_TICKS = 0.08  # runner stop delay after reaching target, in control ticks
MAX_TRACE_POINTS = 64


@dataclass(frozen=True)
class ThreadModel:
    """Physical constants of one kind of fastener (all figures at difficulty 1)."""

    name: str
    capture_mm: float  # lateral error the lead-in chamfer still centres
    clean_start_mm: float  # mean lateral error above which the thread starts crooked
    seat_angle_deg: float
    seat_angle_sd_deg: float
    prevailing_start_nm: float
    prevailing_seat_nm: float
    joint_rate_nm_per_deg: float
    strip_nm: float  # a sound thread's strip torque
    defect_rate: float  # chance of a weak (porous) thread per position
    rundown_deg_per_tick: float
    final_deg_per_tick: float
    xthread_onset_deg: tuple[float, float]
    xthread_rate_nm_per_deg: tuple[float, float]
    travel_m: float  # how far the fastener moves down from thread start to seat
    torque_noise_nm: float


M8_SELF_TAPPING_NUT = ThreadModel(
    name="M8 self-tapping nut on cast stud",
    capture_mm=3.5,
    clean_start_mm=2.3,
    seat_angle_deg=700.0,
    seat_angle_sd_deg=30.0,
    prevailing_start_nm=2.5,
    prevailing_seat_nm=7.5,
    joint_rate_nm_per_deg=0.45,
    strip_nm=36.0,
    defect_rate=0.002,
    rundown_deg_per_tick=60.0,
    final_deg_per_tick=6.0,
    xthread_onset_deg=(40.0, 120.0),
    xthread_rate_nm_per_deg=(0.2, 0.35),
    travel_m=0.010,
    torque_noise_nm=0.12,
)

M6_SCREW = ThreadModel(
    name="M6 screw in tapped hole",
    capture_mm=2.8,
    clean_start_mm=1.9,
    seat_angle_deg=480.0,
    seat_angle_sd_deg=25.0,
    prevailing_start_nm=0.3,
    prevailing_seat_nm=0.8,
    joint_rate_nm_per_deg=0.3,
    strip_nm=17.0,
    defect_rate=0.002,
    rundown_deg_per_tick=90.0,
    final_deg_per_tick=5.0,
    xthread_onset_deg=(40.0, 110.0),
    xthread_rate_nm_per_deg=(0.15, 0.25),
    travel_m=0.010,
    torque_noise_nm=0.06,
)


@dataclass(frozen=True)
class ThreadSample:
    """One position's hidden properties, drawn when the part is made (at reset)."""

    seat_angle_deg: float
    prevailing_start_nm: float
    prevailing_seat_nm: float
    joint_rate_nm_per_deg: float
    strip_nm: float
    clean_start_mm: float
    xthread_onset_deg: float
    xthread_rate_nm_per_deg: float
    breakaway_factor: float


def sample_thread(model: ThreadModel, rng: np.random.Generator, difficulty: float) -> ThreadSample:
    """Draw one position's properties; spreads and the defect rate grow with difficulty."""
    d = max(difficulty, 0.0)
    spread = 0.5 + 0.5 * d
    defect = rng.random() < model.defect_rate * d
    strip = model.strip_nm * (rng.uniform(0.4, 0.8) if defect else rng.normal(1.0, 0.05))
    return ThreadSample(
        seat_angle_deg=float(
            model.seat_angle_deg + rng.normal(0, model.seat_angle_sd_deg * spread)
        ),
        prevailing_start_nm=float(model.prevailing_start_nm * rng.uniform(0.85, 1.15)),
        prevailing_seat_nm=float(model.prevailing_seat_nm * rng.uniform(0.85, 1.15)),
        joint_rate_nm_per_deg=float(model.joint_rate_nm_per_deg * rng.uniform(0.85, 1.15)),
        strip_nm=float(strip),
        clean_start_mm=float(np.clip(rng.normal(model.clean_start_mm, 0.1), 0.5, 10.0)),
        xthread_onset_deg=float(rng.uniform(*model.xthread_onset_deg)),
        xthread_rate_nm_per_deg=float(rng.uniform(*model.xthread_rate_nm_per_deg)),
        breakaway_factor=float(rng.uniform(1.18, 1.35)),
    )


@dataclass
class Rundown:
    """One fastener from thread start to shut-off, and the runner driving it.

    ``misalignment_mm`` is the effective lateral error at thread start (position error
    plus half the lateral speed in mm per tick): above ``sample.clean_start_mm`` the
    thread cross-threads, and in the last 12 % below it the crooked thread is weakened.
    """

    model: ThreadModel
    sample: ThreadSample
    target_nm: float
    angle_limit_deg: float
    misalignment_mm: float
    noise_nm: float
    angle: float = 0.0
    torque: float = 0.0  # last measured torque
    peak: float = 0.0
    stripped: bool = False
    final_stage: bool = False
    shut_off: str | None = None  # "torque", "torque_drop", "angle_limit"
    starts: int = 0
    trace_angle: list[float] = field(default_factory=list)
    trace_torque: list[float] = field(default_factory=list)

    @property
    def cross_threaded(self) -> bool:
        return self.misalignment_mm > self.sample.clean_start_mm

    @property
    def strip_nm(self) -> float:
        if self.cross_threaded:
            return self.sample.strip_nm  # it binds on the crooked thread instead
        ratio = self.misalignment_mm / self.sample.clean_start_mm
        weakening = 0.45 * min(max((ratio - 0.6) / 0.4, 0.0), 1.0)
        return self.sample.strip_nm * (1.0 - weakening)

    @property
    def finished(self) -> bool:
        return self.shut_off is not None

    @property
    def depth_fraction(self) -> float:
        """How far down the fastener has travelled, 0 at thread start and 1 seated."""
        if self.cross_threaded:
            return min(self.angle / self.sample.seat_angle_deg, 0.25)
        return min(self.angle / self.sample.seat_angle_deg, 1.0)

    def true_torque(self, angle: float) -> float:
        """The torque the thread resists with at ``angle`` (updates the strip state)."""
        s = self.sample
        if self.cross_threaded:
            t = s.prevailing_start_nm + max(angle - s.xthread_onset_deg, 0.0) * (
                s.xthread_rate_nm_per_deg
            )
        elif angle <= s.seat_angle_deg:
            frac = angle / s.seat_angle_deg
            t = s.prevailing_start_nm + (s.prevailing_seat_nm - s.prevailing_start_nm) * frac
            t += 0.06 * s.prevailing_seat_nm * math.sin(2 * math.pi * angle / 360.0)
        else:
            t = s.prevailing_seat_nm + s.joint_rate_nm_per_deg * (angle - s.seat_angle_deg)
        if not self.stripped and t >= self.strip_nm:
            self.stripped = True
        if self.stripped:
            return 0.15 * self.strip_nm + 0.2 * math.sin(angle / 40.0)
        return t

    def start(self) -> None:
        """A rising edge of the tool command with the socket on the fastener."""
        self.starts += 1
        if self.shut_off == "torque":
            # Double hit: the seated fastener breaks away above its tightening torque,
            # the controller sees target at once and stops a few degrees later.
            self.shut_off = None
            self.final_stage = True
            self.torque = self.true_torque(self.angle) * self.sample.breakaway_factor
            self.peak = max(self.peak, self.torque)
            self._record()

    def run(self, rng: np.random.Generator) -> bool:
        """Turn for one control tick (the runner's program); True if the spindle turned."""
        if self.finished:
            return False
        if self.starts > 1 and self.torque >= self.target_nm:
            self._advance(self.model.final_deg_per_tick * REACTION_TICKS, rng, extra=self.torque)
            self.shut_off = "torque"
            return True
        remaining = 1.0
        while remaining > 1e-9 and not self.finished:
            speed = (
                self.model.final_deg_per_tick
                if self.final_stage
                else (self.model.rundown_deg_per_tick)
            )
            step = min(SUBSTEP_DEG, speed * remaining)
            remaining -= step / speed
            self._advance(step, rng)
            if self.torque >= SWITCH_FRACTION * self.target_nm:
                self.final_stage = True
            if self.torque >= self.target_nm:
                self._advance(speed * REACTION_TICKS, rng)
                self.shut_off = "torque"
            elif self.peak >= SWITCH_FRACTION * self.target_nm and self.torque < 0.5 * self.peak:
                self.shut_off = "torque_drop"
            elif self.angle >= self.angle_limit_deg:
                self.shut_off = "angle_limit"
        return True

    def _advance(self, deg: float, rng: np.random.Generator, extra: float = 0.0) -> None:
        self.angle += deg
        true = self.true_torque(self.angle)
        if extra > true:  # still above the seated torque after a double hit
            true = extra + self.sample.joint_rate_nm_per_deg * deg
        self.torque = max(true + float(rng.normal(0.0, self.noise_nm)), 0.0)
        self.peak = max(self.peak, self.torque)
        self._record()

    def _record(self) -> None:
        self.trace_angle.append(self.angle)
        self.trace_torque.append(self.torque)


def downsample_trace(
    angles: list[float], torques: list[float], max_points: int = MAX_TRACE_POINTS
) -> tuple[list[float], list[float]]:
    """At most ``max_points`` samples, evenly spaced, keeping the first, last and peak."""
    n = len(angles)
    if n <= max_points:
        idx = list(range(n))
    else:
        peak = int(np.argmax(torques))
        base = np.linspace(0, n - 1, max_points - 1).round().astype(int).tolist()
        idx = sorted(set(base) | {peak})
        while len(idx) > max_points:  # the peak collided with nothing: drop a neighbour
            drop = next(i for i in idx[1:-1] if i != peak)
            idx.remove(drop)
    return [round(angles[i], 2) for i in idx], [round(torques[i], 3) for i in idx]


def classify(
    spec: FastenerSpec,
    torque: float,
    angle: float,
    trace_angle: list[float],
    trace_torque: list[float],
    *,
    missing: bool = False,
    timed_out: bool = False,
) -> ErrorCode:
    """Judge one fastener against its recipe windows and name the failure from the trace.

    In-window results are OK whatever the trace looked like. A NOK one is, in order: a
    missing fastener; a cross-thread (torque reached half the window's midpoint before
    half the minimum angle: the early spike); a stripped thread (peak above that level,
    final below 60 % of the peak: the collapse); a timeout (the run never finished);
    then torque low/high and angle low/high.
    """
    if missing:
        return ErrorCode.MISSING_NUT
    t_ok = spec.torque_min_nm <= torque <= spec.torque_max_nm
    a_ok = spec.angle_min_deg <= angle <= spec.angle_max_deg
    if t_ok and a_ok and not timed_out:
        return ErrorCode.NONE
    level = 0.5 * (spec.torque_min_nm + spec.torque_max_nm) / 2
    early = 0.5 * spec.angle_min_deg
    if any(t >= level and a < early for a, t in zip(trace_angle, trace_torque, strict=True)):
        return ErrorCode.CROSS_THREAD
    peak = max(trace_torque, default=0.0)
    if peak >= level and torque < 0.6 * peak:
        return ErrorCode.STRIPPED
    if timed_out:
        return ErrorCode.FASTEN_TIMEOUT
    if torque < spec.torque_min_nm:
        return ErrorCode.UNDER_TORQUE
    if torque > spec.torque_max_nm:
        return ErrorCode.OVER_TORQUE
    if angle < spec.angle_min_deg:
        return ErrorCode.ANGLE_LOW
    return ErrorCode.ANGLE_HIGH


def judge(
    spec: FastenerSpec, rundown: Rundown | None, *, timed_out: bool = False
) -> FastenerResult:
    """The recorded result of one position; ``rundown`` None means no fastener reached it."""
    if rundown is None or not rundown.trace_angle:
        torque = angle = 0.0
        ta: list[float] = []
        tt: list[float] = []
        code = (
            ErrorCode.MISSING_NUT
            if rundown is None
            else classify(spec, 0.0, 0.0, [], [], timed_out=timed_out)
        )
    else:
        torque, angle = rundown.torque, rundown.angle
        code = classify(
            spec, torque, angle, rundown.trace_angle, rundown.trace_torque, timed_out=timed_out
        )
        ta, tt = downsample_trace(rundown.trace_angle, rundown.trace_torque)
    return FastenerResult(
        position=spec.position,
        side=spec.side,
        torque_nm=round(float(torque), 3),
        angle_deg=round(float(angle), 2),
        torque_min_nm=spec.torque_min_nm,
        torque_max_nm=spec.torque_max_nm,
        angle_min_deg=spec.angle_min_deg,
        angle_max_deg=spec.angle_max_deg,
        ok=code is ErrorCode.NONE,
        error_code=int(code),
        trace_angle_deg=ta,
        trace_torque_nm=tt,
    )
