"""The simulated humanoid as a ``Robot``: a real, registered implementation on ``CellEnv``.

Connecting starts an episode of the configured task; every ``send_action`` is one 30 Hz
control tick. The episode ending (result reached, or a protective stop after a collision)
puts the robot in a finished state: further actions raise ``RobotFaultError`` until
``start_job`` (or ``start_episode``) begins the next job. A job's episode is the job's
task, recipe, seed and difficulty; the robot's own program (``run_program``) is the
scripted expert. Simulator-only extras: ``expert_action`` (the scripted expert for the
current state) and ``outcome``.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from robot.base import (
    JobReport,
    Robot,
    TickHook,
    schema_action_features,
    schema_observation_features,
)
from robot.env import CellEnv, EpisodeOutcome
from robot.errors import (
    ActionError,
    ActionLimitError,
    AlreadyConnectedError,
    NotConnectedError,
    RobotFaultError,
)
from robot.jobs import JobSpec
from robot.schema import ACTION_DIM, Observation, clip_action
from robot.sim.config import SimConfig


class SimRobotConfig(SimConfig):
    """The episode to simulate, plus whether limit violations are refused (not clipped)."""

    strict_limits: bool = Field(default=False, description="raise ActionLimitError, don't clip")

    @classmethod
    def for_job(
        cls, job: JobSpec, *, cameras: bool = True, strict_limits: bool = False
    ) -> SimRobotConfig:
        """The episode that simulates ``job``; ``ValueError`` for a job it cannot be."""
        return cls(
            task=job.task,
            seed=job.seed,
            difficulty=job.difficulty,
            fasteners=job.fasteners,
            takt_s=job.takt_s,
            render=cameras,
            strict_limits=strict_limits,
        )


class SimRobot(Robot):
    """The humanoid cell simulator behind the ``Robot`` interface."""

    name = "sim"

    def __init__(self, config: SimRobotConfig) -> None:
        self.config = config
        self._env: CellEnv | None = None
        self._obs: Observation | None = None
        self._moved = False  # whether the current episode has taken an action

    @property
    def observation_features(self) -> dict[str, tuple[int, ...]]:
        feats = schema_observation_features()
        if not self.config.render:
            feats = {"state": feats["state"]}
        return feats

    @property
    def action_features(self) -> dict[str, type]:
        return schema_action_features()

    @property
    def is_connected(self) -> bool:
        return self._env is not None

    def connect(self) -> None:
        if self._env is not None:
            raise AlreadyConnectedError("the simulated robot is already connected")
        self._env = CellEnv.from_config(self._sim_config(self.config))
        self._obs = self._env.reset()
        self._moved = False

    def disconnect(self) -> None:
        self._require()
        self._env = None
        self._obs = None

    def start_episode(self, config: SimRobotConfig) -> Observation:
        """Begin a new episode (the next job) on the connected robot."""
        self._require()
        self.config = config
        self._env = CellEnv.from_config(self._sim_config(config))
        self._obs = self._env.reset()
        self._moved = False
        return self._obs

    def start_job(self, job: JobSpec, *, cameras: bool = True) -> Observation:
        """Begin ``job``'s episode. An episode of the same settings that has not moved yet
        is kept: a new one would be the same, tick for tick."""
        self._require()
        config = SimRobotConfig.for_job(
            job, cameras=cameras, strict_limits=self.config.strict_limits
        )
        if not self._moved and config == self.config:
            return self.get_observation()
        return self.start_episode(config)

    def get_observation(self) -> Observation:
        self._require()
        assert self._obs is not None
        return self._obs

    def send_action(self, action: np.ndarray) -> np.ndarray:
        env = self._require()
        if env.done:
            raise RobotFaultError(
                f"the episode has ended ({self._end_reason(env)}); start the next episode first"
            )
        a = np.asarray(action, dtype=np.float32)
        if a.shape != (ACTION_DIM,) or not np.all(np.isfinite(a)):
            raise ActionError(
                f"action must be {ACTION_DIM} finite numbers in the order "
                f"{', '.join(self.action_features)}; got shape {a.shape}"
            )
        if self.config.strict_limits:
            clipped = clip_action(a)
            over = [n for n, x, c in zip(self.action_features, a, clipped, strict=True) if x != c]
            if over:
                raise ActionLimitError(
                    f"action beyond the limits in {', '.join(over)}; nothing was moved"
                )
        self._moved = True
        self._obs, _ = env.step(a)
        return env.last_applied.copy()

    @property
    def episode_done(self) -> bool:
        return self._require().done

    @property
    def job_done(self) -> bool:
        return self.episode_done

    def job_report(self) -> JobReport:
        return self.outcome().report()

    def run_program(self, on_tick: TickHook | None = None) -> None:
        """The scripted expert drives the episode to its end."""
        while not self.episode_done:
            before = self.get_observation()
            applied = self.send_action(self.expert_action())
            if on_tick is not None:
                on_tick(before, applied)

    def expert_action(self) -> np.ndarray:
        """The scripted expert's action for the current state (simulator only)."""
        return self._require().expert_action()

    def outcome(self) -> EpisodeOutcome:
        return self._require().outcome()

    @property
    def env(self) -> CellEnv:
        return self._require()

    def _require(self) -> CellEnv:
        if self._env is None:
            raise NotConnectedError("the simulated robot is not connected: call connect()")
        return self._env

    @staticmethod
    def _end_reason(env: CellEnv) -> str:
        out = env.outcome()
        return "job finished OK" if out.success else f"job finished NOK: {out.failure}"

    @staticmethod
    def _sim_config(config: SimRobotConfig) -> SimConfig:
        return SimConfig.model_validate(config.model_dump(exclude={"strict_limits"}))


ROBOT_TYPES: tuple[type[Robot], ...] = (SimRobot,)
