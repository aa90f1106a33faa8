"""Where a robot worker's policies come from: the scripted expert, a shipped policy, a server.

A source is named by a string, so that it can be set per worker from the environment
(``INTERN_POLICY``) or the command line:

* ``expert``: the robot's own scripted program (the simulator's scripted expert, cameras
  off; tens of milliseconds a job);
* ``auto`` (the default): the shipped policy checkpoint of the job's task where one
  exists (``policy.runtime.has_policy``) and torch is installed (the ``policy`` extra),
  otherwise the expert, with a warning in the worker's log;
* ``tcp://HOST:PORT``: a policy server (``intern policy serve``) for every job, through the
  same interface as a local model;
* ``ws://HOST:PORT`` or ``wss://HOST:PORT[/PATH]``: any server speaking openpi's websocket
  protocol (``intern policy serve --protocol openpi``, openpi's own server for pi0 or
  pi0.5, ...), keys as ``policy.openpi_schema`` maps them; ``wss`` is TLS.

A server's token comes from the worker's settings (``INTERN_POLICY_TOKEN``).

``policy_for_jobs(source)`` is what the composition root (``intern worker``) hands the
robot worker (``robot.worker.run_worker(..., policies=...)``): a function from a job to
the ``ChunkPolicy`` that drives it, or None for the expert. Policies run in simulated
time as they would under asynchronous execution, with an inference delay of ``latency``
(``policy.runtime.simulated_async``). The job's recorded ``policy_version`` says which
source and checkpoint ran it. This module imports no torch: a shipped checkpoint loads
it when a job first needs it.

A job that names a ``policy_version`` (``JobSpec.policy_version``: a rollout's arm, a
station's promoted version) runs that checkpoint, whatever the source, found by version
in the checkpoint store (``policy.store``: the shipped checkpoints and the plant's own
folders) and loaded once per worker; ``expert`` names the robot's own program. A version
the store lacks, or one that cannot load here, raises ``PolicyUnavailable``: the job
ends NOK without touching the part (``robot.skills.make_runner``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from policy.base import CheckpointError
from policy.store import CheckpointStore
from robot.chunk_policy import ChunkPolicy, PolicyForJob
from robot.errors import PolicyUnavailable
from robot.jobs import JobOutcome, JobSpec, Task
from robot.skills import EXPERT_VERSION, make_runner

log = logging.getLogger(__name__)


class PolicySource(BaseModel):
    """A parsed source: ``kind`` is expert, auto, remote (our wire, with host and port) or
    openpi (the websocket ``url``, with host and port)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["expert", "auto", "remote", "openpi"]
    host: str | None = None
    port: int | None = None
    url: str | None = None


def parse_source(text: str) -> PolicySource:
    """Parse a source name; ``ValueError`` says what is accepted."""
    t = text.strip()
    if t in ("expert", "auto"):
        return PolicySource.model_validate({"kind": t})
    parts = urlsplit(t)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.hostname and port and not (parts.query or parts.fragment or parts.username):
        if parts.scheme == "tcp" and not parts.path.strip("/"):
            return PolicySource(kind="remote", host=parts.hostname, port=port)
        if parts.scheme in ("ws", "wss"):
            return PolicySource(kind="openpi", host=parts.hostname, port=port, url=t)
    raise ValueError(
        f"policy source {text!r} is not one of: auto, expert, tcp://HOST:PORT "
        "(a policy server started with 'intern policy serve'), ws://HOST:PORT or "
        "wss://HOST:PORT (a server speaking openpi's websocket protocol, e.g. "
        "'intern policy serve --protocol openpi')"
    )


def policy_for_jobs(
    source: str,
    *,
    token: str | None = None,
    latency: str = "fixed:80",
    checkpoints: Sequence[Path] = (),
) -> PolicyForJob:
    """The policy that drives each job, per ``source`` (None: the robot's own program),
    or per the job's ``policy_version``, looked up in the shipped checkpoints and then
    in the ``checkpoints`` folders.

    ``ValueError`` for a source ``parse_source`` refuses. Policies are loaded on first
    use and kept for the worker's life: one per task for ``auto``, one connection for a
    server, one per named version. Each job gets its own simulated-latency wrapper,
    seeded by the job's seed.
    """
    src = parse_source(source)
    loaded: dict[Task, ChunkPolicy | None] = {}
    versions = VersionedPolicies(_store(checkpoints))

    def policy_for(spec: JobSpec) -> ChunkPolicy | None:
        if spec.policy_version is not None:
            base = versions.get(spec.policy_version)
        else:
            if spec.task not in loaded:
                loaded[spec.task] = _make_policy(src, spec.task, token)
            base = loaded[spec.task]
        if base is None:
            return None
        from policy.runtime import simulated_async

        return simulated_async(base, latency=latency, seed=spec.seed)

    return policy_for


def job_runner(
    source: str,
    *,
    token: str | None = None,
    latency: str = "fixed:80",
    checkpoints: Sequence[Path] = (),
) -> Callable[[JobSpec], JobOutcome]:
    """A function that runs a job on the simulated robot, driven by ``source``
    (``policy_for_jobs``)."""
    return make_runner(
        policy_for_jobs(source, token=token, latency=latency, checkpoints=checkpoints)
    )


class VersionedPolicies:
    """Checkpoints by version from a store, each loaded once and kept for the worker's
    life. ``get`` raises ``PolicyUnavailable`` with a message naming the version and
    where it was looked for; ``expert`` is the robot's own program (None)."""

    def __init__(self, store: CheckpointStore) -> None:
        self.store = store
        self.loaded: dict[str, ChunkPolicy] = {}

    def get(self, version: str) -> ChunkPolicy | None:
        if version == EXPERT_VERSION:
            return None
        if version not in self.loaded:
            self.loaded[version] = self._load(version)
        return self.loaded[version]

    def _load(self, version: str) -> ChunkPolicy:
        folder = self.store.find(version)
        if folder is None:
            raise PolicyUnavailable(
                f"policy version {version} is not in this worker's checkpoint store "
                f"({self.store.describe()}): copy its checkpoint folder there"
            )
        try:
            import torch
        except ImportError:
            raise PolicyUnavailable(
                f"policy version {version} needs torch, which is not installed on this "
                "worker: pip install -e '.[policy]'"
            ) from None
        from policy.local import LocalPolicy

        torch.set_num_threads(1)  # as for the shipped policies (_make_policy)
        try:
            policy = LocalPolicy.load(folder)
        except CheckpointError as exc:
            raise PolicyUnavailable(f"policy version {version} cannot load: {exc}") from exc
        log.info("policy version %s loaded from %s", version, folder)
        return policy


def _store(extra: Sequence[Path]) -> CheckpointStore:
    from policy.runtime import checkpoint_root

    return CheckpointStore([checkpoint_root(), *extra])


def _make_policy(src: PolicySource, task: Task, token: str | None) -> ChunkPolicy | None:
    if src.kind == "expert":
        return None
    if src.kind == "remote":
        from policy.client import RemotePolicy

        assert src.host is not None and src.port is not None
        return RemotePolicy(src.host, src.port, token=token).connect()
    if src.kind == "openpi":
        from policy.openpi_client import OpenpiPolicy

        assert src.url is not None
        return OpenpiPolicy(src.url, token=token).connect()
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
