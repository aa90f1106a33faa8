"""The ``ChunkPolicy`` protocol: the one interface through which a policy drives a robot.

Defined here, once, on the robot side; the ``policy`` package implements it. A local torch
model, a remote policy server, a recorder and the simulated-latency runner are all
``ChunkPolicy`` objects, so they wrap one another and swap without code changes on the
robot side. Also here: what the robot side checks of every chunk it is given
(``check_chunk``), and the shape of what a robot worker is handed to choose each job's
policy (``PolicyForJob``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from robot.errors import ActionError
from robot.jobs import JobSpec
from robot.schema import ACTION_DIM, Observation


@runtime_checkable
class ChunkPolicy(Protocol):
    """Infer an action chunk from an observation.

    ``infer(obs, prefix)`` returns a float32 array ``(H, ACTION_DIM)``: row ``i`` is the
    action for control tick ``obs.step + i``. ``prefix`` (``(k, ACTION_DIM)``), when given,
    is the actions already committed for ticks ``obs.step .. obs.step + k - 1``; the chunk
    starts with them (rows ``0..k-1`` equal the prefix) and continues from them.
    ``reset()`` forgets any episode state. ``version`` names the weights (content hash).
    """

    version: str

    def infer(self, obs: Observation, prefix: np.ndarray | None = None) -> np.ndarray: ...

    def reset(self) -> None: ...


PolicyForJob = Callable[[JobSpec], ChunkPolicy | None]
"""What drives the robot for a job: a policy, or None for the robot's own scripted program
(the simulator's scripted expert). A robot worker is handed one by its composition root."""


def check_chunk(chunk: np.ndarray, version: str) -> np.ndarray:
    """A policy's chunk as float32 ``(H, ACTION_DIM)``, or an ``ActionError`` saying why not."""
    c = np.asarray(chunk, dtype=np.float32)
    if c.ndim != 2 or c.shape[1] != ACTION_DIM or c.shape[0] < 1:
        raise ActionError(
            f"policy {version!r} returned a chunk of shape {c.shape}; expected (H, {ACTION_DIM})"
        )
    if not np.all(np.isfinite(c)):
        raise ActionError(f"policy {version!r} returned NaN or infinite actions")
    return c
