"""The Robot interface on the simulated humanoid: schemas, connection, limits, faults."""

from __future__ import annotations

import numpy as np
import pytest

from robot.base import Robot, RobotRegistry, default_registry, make_robot
from robot.errors import (
    ActionError,
    ActionLimitError,
    AlreadyConnectedError,
    NotConnectedError,
    RobotFaultError,
    UnknownRobotError,
)
from robot.jobs import Task
from robot.schema import ACTION_DIM, MAX_STEP_M, STATE_DIM
from robot.sim.robot import SimRobot, SimRobotConfig


def _robot(**kw) -> SimRobot:
    cfg = SimRobotConfig(task=kw.pop("task", Task.NUT_INSTALL), seed=kw.pop("seed", 1), **kw)
    robot = make_robot("sim", cfg)
    assert isinstance(robot, SimRobot)
    return robot


def test_schemas_are_readable_while_disconnected() -> None:
    robot = _robot()
    assert not robot.is_connected
    assert robot.observation_features["state"] == (STATE_DIM,)
    assert {"head", "wrist_left", "wrist_right"} <= set(robot.observation_features)
    assert len(robot.action_features) == ACTION_DIM
    assert set(_robot(render=False).observation_features) == {"state"}


def test_use_while_disconnected_is_a_typed_error() -> None:
    robot = _robot(render=False)
    with pytest.raises(NotConnectedError, match="connect"):
        robot.send_action(np.zeros(ACTION_DIM))
    with pytest.raises(NotConnectedError):
        robot.get_observation()
    with pytest.raises(NotConnectedError):
        robot.disconnect()
    robot.connect()
    with pytest.raises(AlreadyConnectedError):
        robot.connect()
    robot.disconnect()
    assert not robot.is_connected


def test_context_manager_disconnects_even_when_the_body_fails() -> None:
    robot = _robot(render=False)
    with pytest.raises(RuntimeError, match="operator"), robot:
        assert robot.is_connected
        raise RuntimeError("operator pressed stop")
    assert not robot.is_connected


def test_send_action_returns_what_was_really_applied() -> None:
    with _robot(render=False) as robot:
        start = robot.get_observation().state.copy()
        asked = np.zeros(ACTION_DIM, dtype=np.float32)
        asked[0] = 0.5  # far beyond the per-tick limit
        asked[4] = asked[9] = 3.0
        applied = robot.send_action(asked)
        assert applied[0] == pytest.approx(MAX_STEP_M) and applied[4] == 1.0
        moved = robot.get_observation().state[0] - start[0]
        assert moved == pytest.approx(MAX_STEP_M, abs=5e-4)
        with pytest.raises(ActionError, match="finite"):
            robot.send_action(np.full(ACTION_DIM, np.inf))
        with pytest.raises(ActionError, match="shape"):
            robot.send_action(np.zeros(4))


def test_strict_robot_refuses_actions_beyond_limits_and_moves_nothing() -> None:
    with _robot(render=False, strict_limits=True) as robot:
        before = robot.get_observation()
        a = np.zeros(ACTION_DIM, dtype=np.float32)
        a[7] = -0.05
        with pytest.raises(ActionLimitError, match=r"right\.dz"):
            robot.send_action(a)
        assert robot.get_observation() is before
        a[7] = -0.005
        robot.send_action(a)


def test_finished_episode_faults_until_the_next_one_starts() -> None:
    with _robot(render=False, seed=3) as robot:
        while not robot.episode_done:
            robot.send_action(robot.expert_action())
        with pytest.raises(RobotFaultError, match="start the next episode"):
            robot.send_action(np.zeros(ACTION_DIM))
        obs = robot.start_episode(SimRobotConfig(task=Task.SCREWING, seed=4, render=False))
        assert "screws" in obs.instruction
        robot.send_action(np.zeros(ACTION_DIM))


def test_registry_names_types_and_suggests_the_nearest() -> None:
    assert default_registry().names() == ["sim"]
    with pytest.raises(UnknownRobotError, match="did you mean 'sim'"):
        make_robot("simm", None)
    reg = RobotRegistry()

    class Nameless(SimRobot):
        name = ""

    with pytest.raises(ValueError, match="no name"):
        reg.register(Nameless)
    reg.register(SimRobot)
    assert issubclass(reg.get("sim"), Robot)
