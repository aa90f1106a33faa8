"""The ``Robot`` interface every robot implements, and the registry of robot types.

A robot publishes its observation and action feature schemas (readable while
disconnected, so a policy can be checked against a robot before it is switched on),
connects and disconnects (also as a context manager), returns its latest observation and
applies actions. ``send_action`` returns the action really applied after clipping to the
robot's limits, which is what a recorder must store. Failures are the typed errors of
``robot.errors``.

A job is the unit the cell asks for: ``start_job`` readies the robot for one (the part
is in place), then a policy drives it through ``send_action`` (or the robot's own
scripted program runs it, ``run_program``) until ``job_done``; ``job_report`` says how
it went. ``robot.skills.run_job`` uses only this interface.

The simulator (``robot.sim.robot.SimRobot``, registered as ``"sim"``) is the first real
implementation; a humanoid's SDK would be a second one registered the same way.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from robot.errors import NoProgramError, UnknownRobotError
from robot.jobs import FastenerResult, JobSpec
from robot.schema import ARM_ACTION, CAMERAS, IMAGE_SIZE, STATE_DIM, Observation

TickHook = Callable[[Observation, np.ndarray], None]
"""Sees one control tick: the observation before it and the action then applied."""


def schema_observation_features() -> dict[str, tuple[int, ...]]:
    """Observation features of ``robot.schema``: camera images and the state vector."""
    feats: dict[str, tuple[int, ...]] = {c: (IMAGE_SIZE, IMAGE_SIZE, 3) for c in CAMERAS}
    feats["state"] = (STATE_DIM,)
    return feats


def schema_action_features() -> dict[str, type]:
    """Action features in order: ``left.dx`` ... ``left.tool``, ``right.dx`` ... ``right.tool``."""
    return {f"{arm}.{k}": float for arm in ("left", "right") for k in ARM_ACTION}


class JobReport(BaseModel):
    """How a job went on a robot: the result, where it failed, and the time it took.

    ``failure`` names the error code in lower case (None when ``success``);
    ``cycle_time_s`` is working time from the job's start to its verified result, and
    ``phases`` splits it by phase (walk, fetch, align, drive, ...).
    """

    model_config = ConfigDict(extra="forbid")

    success: bool
    failure: str | None
    error_code: int
    fasteners: list[FastenerResult]
    cycle_time_s: float
    phases: dict[str, float]


class Robot(ABC):
    """A robot the cell can drive. Subclasses set ``name`` and implement the methods below."""

    name: ClassVar[str] = ""

    @property
    @abstractmethod
    def observation_features(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every observation entry; available while disconnected."""

    @property
    @abstractmethod
    def action_features(self) -> dict[str, type]:
        """Ordered name -> type of every action component; available while disconnected."""

    @property
    @abstractmethod
    def is_connected(self) -> bool: ...

    @abstractmethod
    def connect(self) -> None:
        """Open the connection; ``AlreadyConnectedError`` if it is open."""

    @abstractmethod
    def disconnect(self) -> None:
        """Close the connection; ``NotConnectedError`` if it is not open."""

    @abstractmethod
    def get_observation(self) -> Observation:
        """The latest observation; ``NotConnectedError`` while disconnected."""

    @abstractmethod
    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Apply one action; returns what was really applied after clipping to limits.

        ``NotConnectedError`` while disconnected, ``ActionError`` for an action that cannot
        be applied (shape, NaN), ``ActionLimitError`` for one beyond the limits when the
        robot refuses rather than clips, ``RobotFaultError`` when the robot must be reset.
        """

    @abstractmethod
    def start_job(self, job: JobSpec, *, cameras: bool = True) -> Observation:
        """Ready the connected robot for ``job`` (its part is in place); the first view.

        ``cameras=False`` lets a robot leave its images out when nothing will look at
        them (its own program runs the job). ``NotConnectedError`` while disconnected; a
        job the robot cannot do raises ``ValueError`` saying why.
        """

    @property
    @abstractmethod
    def job_done(self) -> bool:
        """True once the current job reached its end: its result, or a protective stop.
        Further actions raise ``RobotFaultError`` until the next ``start_job``."""

    @abstractmethod
    def job_report(self) -> JobReport:
        """How the current job went so far; final once ``job_done``."""

    def run_program(self, on_tick: TickHook | None = None) -> None:
        """Run the current job to its end with the robot's own scripted program, no policy.

        ``on_tick(obs, applied)``, when given, sees each tick the program ran: the
        observation before the tick and the action then applied (to record the job).
        The simulator's program is its scripted expert. A robot without one raises
        ``NoProgramError``.
        """
        raise NoProgramError(
            f"robot type {self.name!r} has no scripted program of its own: "
            "run the job with a policy"
        )

    def __enter__(self) -> Robot:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.is_connected:
            self.disconnect()


_BUILTIN_MODULES = ("robot.sim.robot",)


class RobotRegistry:
    """Robot types by name. ``default_registry()`` holds the built-in ones."""

    def __init__(self) -> None:
        self._types: dict[str, type[Robot]] = {}

    def register(self, cls: type[Robot]) -> type[Robot]:
        if not cls.name:
            raise ValueError(f"{cls.__qualname__} has no name to register under")
        if cls.name in self._types and self._types[cls.name] is not cls:
            raise ValueError(f"robot type {cls.name!r} is already registered")
        self._types[cls.name] = cls
        return cls

    def names(self) -> list[str]:
        return sorted(self._types)

    def get(self, name: str) -> type[Robot]:
        try:
            return self._types[name]
        except KeyError:
            near = difflib.get_close_matches(name, self._types, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            known = ", ".join(self.names()) or "none"
            raise UnknownRobotError(f"no robot type {name!r} (known: {known}){hint}") from None

    def make(self, name: str, config: Any) -> Robot:
        """An instance of robot type ``name`` built from its config (disconnected)."""
        factory: Callable[[Any], Robot] = self.get(name)
        return factory(config)


def default_registry() -> RobotRegistry:
    """A registry with the built-in robot types (the simulator)."""
    import importlib

    reg = RobotRegistry()
    for module in _BUILTIN_MODULES:
        mod = importlib.import_module(module)
        for cls in getattr(mod, "ROBOT_TYPES", ()):
            reg.register(cls)
    return reg


def make_robot(name: str, config: Any) -> Robot:
    """Build a built-in robot by type name, e.g. ``make_robot("sim", SimRobotConfig(...))``."""
    return default_registry().make(name, config)
