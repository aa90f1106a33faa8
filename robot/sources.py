"""Where a robot worker's actions come from: the scripted expert, a shipped policy, a server.

A source is named by a string, so that it can be set per worker from the environment
(``INTERN_POLICY``) or the command line:

* ``expert``: the simulator's scripted expert (cameras off; tens of milliseconds a job);
* ``auto`` (the default): the shipped policy checkpoint of the job's task where one
  exists (``policy.runtime.has_policy``) and torch is installed (the ``policy`` extra),
  otherwise the expert, with a warning in the worker's log;
* ``tcp://HOST:PORT``: a policy server (``intern policy serve``) for every job, through the
  same interface as a local model.

Policies run in simulated time as they would under asynchronous execution, with an
inference delay of ``latency`` (``policy.runtime.simulated_async``). The job's recorded
``policy_version`` says which source and checkpoint ran it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from robot.jobs import JobOutcome, JobSpec, Task

if TYPE_CHECKING:
    from robot.env import ChunkPolicy

log = logging.getLogger(__name__)


class PolicySource(BaseModel):
    """A parsed source: ``kind`` is expert, auto or remote (with host and port)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["expert", "auto", "remote"]
    host: str | None = None
    port: int | None = None


def parse_source(text: str) -> PolicySource:
    """Parse a source name; ``ValueError`` says what is accepted."""
    t = text.strip()
    if t in ("expert", "auto"):
        return PolicySource(kind=t)
    if t.startswith("tcp://"):
        parts = urlsplit(t)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.hostname and port and not parts.path.strip("/"):
            return PolicySource(kind="remote", host=parts.hostname, port=port)
    raise ValueError(
        f"policy source {text!r} is not one of: auto, expert, tcp://HOST:PORT "
        "(a policy server started with 'intern policy serve')"
    )


def job_runner(
    source: str, *, token: str | None = None, latency: str = "fixed:80"
) -> Callable[[JobSpec], JobOutcome]:
    """A function that runs a job on the simulated robot, driven by ``source``.

    Policies are loaded on first use and kept for the worker's life: one per task for
    ``auto``, one connection for a server. Torch is imported only when a shipped
    checkpoint is really used.
    """
    from robot.skills import run_job

    src = parse_source(source)
    loaded: dict[Task, ChunkPolicy | None] = {}

    def policy_for(task: Task) -> ChunkPolicy | None:
        if task not in loaded:
            loaded[task] = _make_policy(src, task, token)
        return loaded[task]

    def run(spec: JobSpec) -> JobOutcome:
        base = policy_for(spec.task)
        if base is None:
            return run_job(spec)
        from policy.runtime import simulated_async

        return run_job(spec, policy=simulated_async(base, latency=latency, seed=spec.seed))

    return run


def _make_policy(src: PolicySource, task: Task, token: str | None) -> ChunkPolicy | None:
    if src.kind == "expert":
        return None
    if src.kind == "remote":
        from policy.client import RemotePolicy

        assert src.host is not None and src.port is not None
        return RemotePolicy(src.host, src.port, token=token).connect()
    from policy.runtime import checkpoint_dir, has_policy, load_policy

    if not has_policy(task):
        return None
    try:
        import torch
    except ImportError:
        log.warning(
            "torch is not installed, so the expert runs %s instead of %s; install "
            "the policy extra: pip install -e '.[policy]'",
            task.value,
            checkpoint_dir(task),
        )
        return None
    # One intra-op thread: a worker runs one job at a time, and the workers of a host
    # share its cores. Three workers of two threads each on two cores spun against each
    # other and ran their jobs 2-7 times slower than with one thread each.
    torch.set_num_threads(1)
    return load_policy(task)
