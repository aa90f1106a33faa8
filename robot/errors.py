"""Typed errors of the robot side, so callers can tell a wiring fault from a bad command.

Every message says what happened and what to do about it.
"""

from __future__ import annotations


class RobotError(Exception):
    """Base of every error the robot package raises on purpose."""


class NotConnectedError(RobotError, ConnectionError):
    """The robot was used while disconnected: call ``connect()`` (or use ``with robot:``)."""


class AlreadyConnectedError(RobotError):
    """``connect()`` on a robot that is already connected."""


class ActionError(RobotError, ValueError):
    """An action that cannot be applied at all (wrong shape, NaN or infinite values)."""


class ActionLimitError(ActionError):
    """An action outside the schema's limits sent to a robot configured to refuse them."""


class RobotFaultError(RobotError):
    """The robot is in a fault or finished state and needs a reset before it moves again."""


class NoProgramError(RobotError):
    """A job asked of a robot's own scripted program on a robot that has none."""


class EpisodeStateError(RobotError, RuntimeError):
    """A simulator episode used out of order (step before reset, or after it ended)."""


class UnknownRobotError(RobotError, KeyError):
    """A robot type name that is not registered; the message suggests the nearest one."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class PolicyUnavailable(RobotError):
    """The policy a job names cannot be had on this worker (an unknown version, or one
    that cannot load here). Raised before anything touches the part: the job ends NOK
    with the message as its detail."""
