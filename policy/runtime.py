"""Glue for the robot worker and ``robot.skills.run_job``: the shipped policies.

``load_policy(task)`` returns the shipped checkpoint for ``task`` as a ``ChunkPolicy``
(``LocalPolicy``); ``simulated_async(policy)`` wraps any policy so that, in simulated
time, its chunks run as they would under asynchronous execution with an inference delay
counted in ticks. ``has_policy`` and ``checkpoint_dir`` import no torch, so the cell can
ask which tasks a robot has a skill for without loading a model.

Checkpoints live in ``policy/checkpoints/<task>/`` (``model.safetensors`` +
``config.json``); ``INTERN_POLICY_DIR`` points elsewhere (same layout).
"""

from __future__ import annotations

import os
from pathlib import Path

from policy.base import CheckpointError
from policy.exec_config import ExecConfig
from policy.latency import LatencyInjector
from policy.simtime import SimulatedAsyncPolicy
from robot.chunk_policy import ChunkPolicy
from robot.jobs import Task

SHIPPED = Path(__file__).parent / "checkpoints"


def checkpoint_root() -> Path:
    env = os.environ.get("INTERN_POLICY_DIR")
    return Path(env) if env else SHIPPED


def checkpoint_dir(task: Task | str) -> Path:
    """Folder of ``task``'s checkpoint (it may not exist; see ``has_policy``)."""
    return checkpoint_root() / Task(task).value


def has_policy(task: Task | str) -> bool:
    d = checkpoint_dir(task)
    return (d / "model.safetensors").is_file() and (d / "config.json").is_file()


def policy_version(task: Task | str) -> str:
    """The version id of ``task``'s checkpoint, read from its config (no torch)."""
    from policy.checkpoint import read_config

    return str(read_config(checkpoint_dir(task))["version"])


def load_policy(task: Task | str, *, seed: int = 0) -> ChunkPolicy:
    """The checkpoint for ``task`` as a local torch policy (imports torch)."""
    if not has_policy(task):
        raise CheckpointError(
            f"no policy for {Task(task).value} in {checkpoint_root()}: train one with "
            f"'intern policy train --task {Task(task).value} ...' and copy it there"
        )
    from policy.local import LocalPolicy

    return LocalPolicy.load(checkpoint_dir(task), seed=seed)


def simulated_async(
    policy: ChunkPolicy,
    *,
    latency: str = "fixed:80",
    seed: int = 0,
    config: ExecConfig | None = None,
) -> SimulatedAsyncPolicy:
    """Wrap ``policy`` for simulated time: each ``infer`` returns the actions to execute
    (all of them) before the next call, as asynchronous execution with ``latency`` would
    run them (see ``policy.simtime.SimulatedAsyncPolicy``)."""
    return SimulatedAsyncPolicy(
        policy,
        config,
        latency=LatencyInjector(latency, seed=seed),
        horizon=int(getattr(policy, "horizon", 30)),
    )
