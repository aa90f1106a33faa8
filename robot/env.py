"""The simulated humanoid cell as an environment: the contract between ``robot`` and ``policy``.

``CellEnv`` runs one episode of a task in simulated time at 30 Hz (``robot.schema``):
``reset()`` -> ``Observation``; ``step(action)`` -> ``(Observation, done)``; the scripted
expert's action for the current state from ``expert_action()``; the result from
``outcome()``. Same seed, same actions -> the same episode, byte for byte.

What the policy drives and what is scripted: each episode is a series of rounds (see
``robot.sim.task``). Walking to the station, fetching fasteners from the feeders,
turning to the fixture with a casting and the final verification are scripted: they cost
simulated time (counted in ``sim_time_s`` and the cycle time) but no control ticks, so the
observation jumps between the last tick of one round and the first of the next
(``obs.extras["round"]`` changes). Within a round the policy drives both arms at every
tick: for fastening, align over the stud or hole, descend until the fastener sits on it,
hold the tool on while following it down, lift clear; for material handling, align the
grippers with the casting's lugs, descend, close, lift (round 1), then align the casting
over the fixture, lower it, open and lift (round 2).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from robot.base import JobReport
from robot.chunk_policy import ChunkPolicy, check_chunk
from robot.errors import ActionError, EpisodeStateError
from robot.jobs import ErrorCode, FastenerResult, FastenerSpec, Task
from robot.schema import ACTION_DIM, Observation, clip_action
from robot.sim.config import SimConfig
from robot.sim.expert import expert_action
from robot.sim.fasten import FastenTask
from robot.sim.handling import HandlingTask
from robot.sim.render import Renderer
from robot.sim.task import SimTask, Streams


class EpisodeOutcome(BaseModel):
    """How an episode ended. ``cycle_time_s`` equals ``sim_time_s`` once it is done."""

    model_config = ConfigDict(extra="forbid")

    task: Task
    seed: int
    difficulty: float
    done: bool
    success: bool
    failure: str | None
    error_code: int
    fasteners: list[FastenerResult]
    sim_time_s: float
    cycle_time_s: float
    takt_s: float
    steps: int
    phases: dict[str, float]

    @property
    def within_takt(self) -> bool:
        return self.done and self.cycle_time_s <= self.takt_s

    def report(self) -> JobReport:
        """The episode as any robot reports a job (``Robot.job_report``)."""
        return JobReport(
            success=self.success,
            failure=self.failure,
            error_code=self.error_code,
            fasteners=self.fasteners,
            cycle_time_s=self.cycle_time_s,
            phases=self.phases,
        )


def make_task(cfg: SimConfig) -> SimTask:
    """The task world for ``cfg`` with its random streams (not yet reset)."""
    streams = Streams.from_seed(cfg.seed, cfg.task)
    if cfg.task is Task.MATERIAL_HANDLING:
        return HandlingTask(cfg, streams)
    return FastenTask(cfg, streams)


class CellEnv:
    """One humanoid cell episode in simulated time at 30 Hz (robot.schema.CONTROL_HZ).

    ``render=False`` skips the cameras (``obs.images`` is empty): for the expert and for
    runs that only need results. Invalid settings raise ``pydantic.ValidationError`` (a
    ``ValueError``) naming the field.
    """

    def __init__(
        self,
        task: Task | str,
        *,
        seed: int,
        difficulty: float = 1.0,
        render: bool = True,
        fasteners: Sequence[FastenerSpec] | None = None,
        takt_s: float = 76.0,
        expert_error: bool = True,
    ) -> None:
        # Validated as given (a task may be named by its value), so that a bad setting is a
        # ValidationError naming its field.
        cfg = SimConfig.model_validate(
            {
                "task": task,
                "seed": seed,
                "difficulty": difficulty,
                "render": render,
                "fasteners": tuple(fasteners) if fasteners is not None else None,
                "takt_s": takt_s,
                "expert_error": expert_error,
            }
        )
        self._init(cfg)

    @classmethod
    def from_config(cls, cfg: SimConfig) -> CellEnv:
        env = cls.__new__(cls)
        env._init(cfg)
        return env

    def _init(self, cfg: SimConfig) -> None:
        self.config = cfg
        probe = make_task(cfg)
        probe.reset()
        self.instruction: str = probe.instruction
        self.max_steps: int = probe.max_steps
        self._task: SimTask | None = None
        self._renderer: Renderer | None = None
        self.last_applied = np.zeros(ACTION_DIM, dtype=np.float32)

    @property
    def task(self) -> SimTask:
        if self._task is None:
            raise EpisodeStateError("the episode has not started: call reset() first")
        return self._task

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done

    @property
    def steps(self) -> int:
        return 0 if self._task is None else self._task.ticks

    def reset(self) -> Observation:
        """Start the episode afresh (same seed: same episode) and return the first view."""
        cfg = self.config
        task = make_task(cfg)
        task.reset()
        self._task = task
        self._renderer = Renderer(task.rng.image, cfg.difficulty) if cfg.render else None
        self.last_applied = np.zeros(ACTION_DIM, dtype=np.float32)
        return self._observe()

    def step(self, action: np.ndarray) -> tuple[Observation, bool]:
        """Apply one action (clipped to the schema's limits) for one tick."""
        task = self.task
        if task.done:
            raise EpisodeStateError("the episode is over: read outcome() or call reset()")
        a = np.asarray(action, dtype=np.float32)
        if a.shape != (ACTION_DIM,):
            raise ActionError(f"action has shape {a.shape}; expected ({ACTION_DIM},)")
        if not np.all(np.isfinite(a)):
            raise ActionError("action contains NaN or infinite values; nothing was moved")
        self.last_applied = task.tick(clip_action(a))
        return self._observe(), task.done

    def expert_action(self) -> np.ndarray:
        """The scripted expert's action for the current state; zeros once the episode ended."""
        task = self.task
        if task.done:
            return np.zeros(ACTION_DIM, dtype=np.float32)
        return expert_action(task)

    def aim(self) -> tuple[np.ndarray, np.ndarray]:
        """The hidden sideways offsets each hand must still close (``SimTask.aim``): a
        training signal for policies, like ``expert_action``."""
        return self.task.aim()

    def outcome(self) -> EpisodeOutcome:
        """The result so far; final once ``done``."""
        task, cfg = self.task, self.config
        res = task.result()
        failure = None if res.success else ErrorCode(res.error_code).name.lower()
        t = round(task.clock.sim_time_s, 4)
        return EpisodeOutcome(
            task=cfg.task,
            seed=cfg.seed,
            difficulty=cfg.difficulty,
            done=task.done,
            success=res.success and task.done,
            failure=failure,
            error_code=res.error_code,
            fasteners=res.fasteners,
            sim_time_s=t,
            cycle_time_s=t,
            takt_s=cfg.takt_s,
            steps=task.ticks,
            phases={k: round(v, 4) for k, v in task.clock.phases.items()},
        )

    def _observe(self) -> Observation:
        task = self.task
        images = self._renderer.render(task.scene()) if self._renderer is not None else {}
        return Observation(
            images=images,
            state=task.state(),
            instruction=task.instruction,
            step=task.ticks,
            extras={"round": float(task.round), "sim_time_s": task.clock.sim_time_s},
        )


StepHook = Callable[[Observation, np.ndarray, np.ndarray | None], None]


def rollout(
    env: CellEnv,
    policy: ChunkPolicy | None = None,
    *,
    replan_every: int | None = None,
    on_step: StepHook | None = None,
    expert_labels: bool = False,
) -> EpisodeOutcome:
    """Run one episode from ``reset()`` to done and return its outcome.

    ``policy`` None drives with the scripted expert. A chunk is executed open loop for
    ``replan_every`` ticks (default: all of it) and always re-planned when a scripted phase
    moved the arms (a new round). ``on_step(obs, applied, expert)`` sees every observation
    with the action then applied and, with ``expert_labels``, the expert's action for that
    same state (``None`` otherwise), e.g. to record the episode or relabel it.
    """
    obs = env.reset()
    if policy is not None:
        policy.reset()
    done = False
    while not done:
        if policy is None:
            actions = env.expert_action()[None]
        else:
            actions = check_chunk(policy.infer(obs), policy.version)
            if replan_every is not None:
                actions = actions[: max(replan_every, 1)]
        start_round = obs.extras.get("round")
        for a in actions:
            before = obs
            label = env.expert_action() if expert_labels else None
            obs, done = env.step(a)
            if on_step is not None:
                on_step(before, env.last_applied, label)
            if done or obs.extras.get("round") != start_round:
                break
    return env.outcome()
