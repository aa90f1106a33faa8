"""What every simulated task shares: random streams, arms, clock, rounds and the state vector.

An episode is a sequence of *rounds*. Each round starts with a scripted phase that costs
simulated time but no control ticks (walking to the station, fetching fasteners, turning
with the casting); then the policy drives both arms at 30 Hz until each arm has finished
its part of the round, or the round's tick budget runs out (a timeout). After the last
round a scripted verify phase ends the episode.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from robot.jobs import FastenerResult, Side, Task
from robot.schema import ACTION_DIM, DT, STATE_DIM
from robot.sim.arms import ARM_DIM, Arm, Clock
from robot.sim.config import PhaseTimes, SimConfig
from robot.sim.render import Scene

SIDES: tuple[Side, Side] = (Side.LEFT, Side.RIGHT)
_TASK_INDEX = {Task.NUT_INSTALL: 1, Task.SCREWING: 2, Task.MATERIAL_HANDLING: 3}


@dataclass
class Streams:
    """Independent random streams of one episode, all from its seed.

    ``world`` makes the part and drives the physics, ``expert`` holds the expert's
    perception errors, ``sensor`` the proprioceptive noise, ``image`` the pixel noise. They
    are separate so that rendering or asking the expert never changes what happens.
    """

    world: np.random.Generator
    expert: np.random.Generator
    sensor: np.random.Generator
    image: np.random.Generator

    @classmethod
    def from_seed(cls, seed: int, task: Task) -> Streams:
        children = np.random.SeedSequence([seed, _TASK_INDEX[task]]).spawn(4)
        return cls(*(np.random.default_rng(c) for c in children))


@dataclass(frozen=True)
class Result:
    """How an episode ended (the env wraps it into ``EpisodeOutcome``)."""

    success: bool
    error_code: int
    fasteners: list[FastenerResult]


class SimTask(ABC):
    """One task's world. Subclasses build the part, move the arms and judge the result."""

    times: PhaseTimes

    def __init__(self, cfg: SimConfig, streams: Streams) -> None:
        self.cfg = cfg
        self.rng = streams
        self.d = cfg.difficulty
        self.clock = Clock()
        self.arms = {s: Arm(s, np.zeros(3)) for s in SIDES}
        self.round = 0
        self.n_rounds = 1
        self.round_ticks = 0
        self.ticks = 0
        self.done = False
        self.instruction = ""

    @property
    def max_steps(self) -> int:
        """Control ticks an episode can take at most (every round timing out)."""
        return self.n_rounds * self.times.round_budget_ticks

    def jitter(self, mean: float, spread: float) -> float:
        return mean + float(self.rng.world.uniform(0.0, spread))

    def tick(self, action: np.ndarray) -> np.ndarray:
        """Apply one clipped action; returns the action as really commanded."""
        applied = np.empty(ACTION_DIM, dtype=np.float32)
        busy = False
        for i, side in enumerate(SIDES):
            a = action[i * ARM_DIM : (i + 1) * ARM_DIM]
            applied[i * ARM_DIM : (i + 1) * ARM_DIM], working = self.step_arm(side, a)
            busy = busy or working
        self.after_arms(action)
        self.ticks += 1
        self.round_ticks += 1
        self.clock.add(self.tick_phase(busy), DT)
        if self.round_finished():
            self.next_round()
        elif self.round_ticks >= self.times.round_budget_ticks:
            self.time_out_round()
            self.next_round()
        return applied

    def next_round(self) -> None:
        self.round += 1
        if self.round < self.n_rounds:
            self.start_round()
        else:
            self.clock.add("verify", self.jitter(self.times.verify_s, self.times.verify_jitter_s))
            self.done = True

    def state(self) -> np.ndarray:
        """Proprioception in ``robot.schema.STATE_LAYOUT`` order, with sensor noise."""
        out = np.zeros(STATE_DIM, dtype=np.float32)
        n = self.rng.sensor.standard_normal(2 * 4)
        pos_sd = 5e-5 * self.d
        for i, side in enumerate(SIDES):
            arm = self.arms[side]
            torque, holding = self.arm_signals(side)
            o = i * 7
            out[o : o + 3] = arm.pos + n[i * 4 : i * 4 + 3] * pos_sd
            out[o + 3] = arm.yaw + n[i * 4 + 3] * 1e-3 * self.d
            out[o + 4] = arm.tool_level
            out[o + 5] = torque
            out[o + 6] = holding
        out[14] = self.progress()
        return out

    def after_arms(self, action: np.ndarray) -> None:
        """Hook after both arms moved in a tick (e.g. a casting carried by both hands)."""
        return None

    def tick_phase(self, busy: bool) -> str:
        """The cycle-time phase a control tick counts towards."""
        return "drive" if busy else "align"

    @abstractmethod
    def reset(self) -> None:
        """Make the part, run the opening scripted phases, leave the arms at the ready pose."""

    @abstractmethod
    def start_round(self) -> None:
        """The scripted phase that opens ``self.round``."""

    @abstractmethod
    def step_arm(self, side: Side, a: np.ndarray) -> tuple[np.ndarray, bool]:
        """Move one arm for one tick; returns the applied arm action and whether it worked."""

    @abstractmethod
    def round_finished(self) -> bool: ...

    @abstractmethod
    def time_out_round(self) -> None:
        """The round's tick budget ran out: record what was left unfinished."""

    @abstractmethod
    def arm_signals(self, side: Side) -> tuple[float, float]:
        """(normalised tool torque or load, holding flag) for the state vector."""

    @abstractmethod
    def progress(self) -> float:
        """Fraction of the task's items finished, 0..1."""

    def aim(self) -> tuple[np.ndarray, np.ndarray]:
        """Where each hand must still move sideways, from the hidden truth: (2, 2) x, y
        offsets in metres in the cell frame (left arm first) and (2,) flags, False where a
        hand has nothing to line up with. A training signal, never an observation."""
        off = np.zeros((2, 2), dtype=np.float32)
        ok = np.zeros(2, dtype=bool)
        for i, side in enumerate(SIDES):
            xy = self.aim_of(side)
            if xy is not None:
                off[i], ok[i] = xy, True
        return off, ok

    def aim_of(self, side: Side) -> np.ndarray | None:
        """One hand's part of ``aim``: the x, y it must still cover, or None."""
        return None

    @abstractmethod
    def scene(self) -> Scene: ...

    @abstractmethod
    def result(self) -> Result: ...
