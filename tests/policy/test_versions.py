"""Policy versions: checkpoints found by content hash in a store, and a worker process
running the version a job names (or ending it NOK, untouched, when it cannot)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from cell.config import sample_config_path
from policy.runtime import SHIPPED, checkpoint_dir, policy_version
from policy.sources import VersionedPolicies
from policy.store import CheckpointStore
from robot.errors import PolicyUnavailable
from robot.jobs import ErrorCode, JobSpec, Outcome, Task
from robot.sim.config import default_fasteners
from tests.checkpoint_variants import variant
from tests.robot.fenced import send_fenced, stored_outcome

UNKNOWN = "0123456789abcdef"
WORKER = (sys.executable, "-m", "cell", "worker", "--robot", "R1", "--loglevel", "INFO")


def test_the_store_finds_shipped_and_added_versions_by_content_hash(tmp_path: Path) -> None:
    store = CheckpointStore([SHIPPED, tmp_path / "store"])
    shipped = policy_version(Task.SCREWING)
    assert store.find(shipped) == checkpoint_dir(Task.SCREWING)
    assert store.find(UNKNOWN) is None
    # Added while the store is in use: found on the next look-up, by its own hash.
    added = variant(checkpoint_dir(Task.SCREWING), tmp_path / "store")
    assert added != shipped
    assert store.find(added) == tmp_path / "store" / added


def test_an_unknown_or_tampered_version_is_unavailable_with_a_reason(tmp_path: Path) -> None:
    added = variant(checkpoint_dir(Task.NUT_INSTALL), tmp_path)
    weights = tmp_path / added / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # the file no longer hashes to its recorded version
    weights.write_bytes(bytes(data))
    versions = VersionedPolicies(CheckpointStore([tmp_path]))
    with pytest.raises(PolicyUnavailable, match=f"{UNKNOWN} is not in this worker's"):
        versions.get(UNKNOWN)
    with pytest.raises(PolicyUnavailable, match="cannot load"):
        versions.get(added)
    assert versions.get("expert") is None


def _spec(key: str, version: str | None) -> JobSpec:
    return JobSpec(
        job_key=key,
        station_id="ST10",
        robot_id="R1",
        part_id="P-9",
        program_no=1,
        task=Task.NUT_INSTALL,
        fasteners=default_fasteners(Task.NUT_INSTALL),
        takt_s=76,
        seed=11,
        policy_version=version,
    )


def test_a_worker_process_runs_the_version_a_job_names(redis_url: str, tmp_path: Path) -> None:
    """``intern worker --policy expert`` with a checkpoint store: a job naming a version
    in the store runs that version; one naming an unknown version ends NOK with
    DISPATCH_FAILED and no fastener driven; a job naming none runs the worker's default."""
    store = tmp_path / "checkpoints"
    candidate = variant(checkpoint_dir(Task.NUT_INSTALL), store)
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [*WORKER, "--config", str(sample_config_path()), "--policy", "expert"],
        env=dict(os.environ, INTERN_REDIS_URL=redis_url, INTERN_CHECKPOINT_DIR=str(store)),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = redis.Redis.from_url(redis_url)
    jobs = {"ST10:0:named": candidate, "ST10:0:unknown": UNKNOWN, "ST10:0:default": None}
    try:
        for key, version in jobs.items():
            send_fenced(client, _spec(key, version))
        deadline = time.monotonic() + 240
        out = {key: stored_outcome(client, key, deadline) for key in jobs}
    finally:
        proc.terminate()
        proc.wait(30)
        client.close()
    named, unknown, default = out.values()
    assert named.policy_version == candidate and len(named.fasteners) == 6
    assert unknown.outcome is Outcome.NOK and unknown.error_code == ErrorCode.DISPATCH_FAILED
    assert unknown.fasteners == [] and unknown.cycle_time_ms == 0
    assert f"policy version {UNKNOWN} is not in this worker's checkpoint store" in unknown.detail
    assert default.policy_version == "expert"
