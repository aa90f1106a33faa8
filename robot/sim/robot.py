"""The simulated humanoid as a ``Robot``: a real, registered implementation on ``CellEnv``.

Connecting starts an episode of the configured task; every ``send_action`` is one 30 Hz
control tick. The episode ending (result reached, or a protective stop after a collision)
puts the robot in a finished state: further actions raise ``RobotFaultError`` until
``start_episode`` begins the next job. Simulator-only extras: ``expert_action`` (the
scripted expert for the current state) and ``outcome``.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from robot.base import Robot, schema_action_features, schema_observation_features
from robot.env import CellEnv, EpisodeOutcome
from robot.errors import (
    ActionError,
    ActionLimitError,
    AlreadyConnectedError,
    NotConnectedError,
    RobotFaultError,
)
from robot.schema import ACTION_DIM, Observation, clip_action
from robot.sim.config import SimConfig


class SimRobotConfig(SimConfig):
    """The episode to simulate, plus whether limit violations are refused (not clipped)."""

    strict_limits: bool = Field(default=False, description="raise ActionLimitError, don't clip")


class SimRobot(Robot):
    """The humanoid cell simulator behind the ``Robot`` interface."""

    name = "sim"

    def __init__(self, config: SimRobotConfig) -> None:
        self.config = config
        self._env: CellEnv | None = None
        self._obs: Observation | None = None

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
        self._env = CellEnv.from_config(SimConfig(**self._sim_fields(self.config)))
        self._obs = self._env.reset()

    def disconnect(self) -> None:
        self._require()
        self._env = None
        self._obs = None

    def start_episode(self, config: SimRobotConfig) -> Observation:
        """Begin a new episode (the next job) on the connected robot."""
        self._require()
        self.config = config
        self._env = CellEnv.from_config(SimConfig(**self._sim_fields(config)))
        self._obs = self._env.reset()
        return self._obs

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
        self._obs, _ = env.step(a)
        return env.last_applied.copy()

    @property
    def episode_done(self) -> bool:
        return self._require().done

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
    def _sim_fields(config: SimRobotConfig) -> dict[str, object]:
        return config.model_dump(exclude={"strict_limits"})


ROBOT_TYPES: tuple[type[Robot], ...] = (SimRobot,)
