"""The robot worker on a real Redis: a fence is claimed once, a revoked one never runs,
a stop request ends a job at a safe point, and a worker process runs a fenced job."""

import json
import time

import redis

from robot.fence import WorkerFences, claim_key, record_key
from robot.jobs import ErrorCode, JobOutcome, JobSpec, Outcome, Task
from robot.worker import execute_fenced
from tests.robot.fenced import cell_says


def _spec(key: str = "ST30:0:1") -> JobSpec:
    return JobSpec(
        job_key=key,
        station_id="ST30",
        robot_id="R3",
        part_id="P-1",
        program_no=1,
        task=Task.MATERIAL_HANDLING,
        takt_s=76,
        seed=1,
    )


def _runner(calls: list[str]):
    def run(spec: JobSpec) -> JobOutcome:
        calls.append(spec.job_key)
        return JobOutcome(
            job_key=spec.job_key, robot_id=spec.robot_id, outcome=Outcome.OK, cycle_time_ms=61000
        )

    return run


def _issued(client: redis.Redis, key: str, fence: str = "f1") -> WorkerFences:
    """A fence issued for ``key`` as the cell issues it, and a worker's side of it."""
    client.delete(record_key(key), claim_key(key))
    assert cell_says(client, "issue", key, fence, "R3") == "issued"
    return WorkerFences(client, "w1")


def _record(client: redis.Redis, key: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(record_key(key)).items()}


def test_a_second_delivery_of_the_same_fence_is_refused_without_running(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    fences = _issued(client, "ST30:0:1")
    calls: list[str] = []
    first = execute_fenced(fences, _spec(), "f1", _paced(calls))
    again = execute_fenced(fences, _spec(), "f1", _paced(calls))
    assert calls == ["ST30:0:1"] and again is None
    assert first is not None and first.outcome is Outcome.OK
    rec = _record(client, "ST30:0:1")
    assert rec["state"] == "done" and json.loads(rec["outcome"]) == first.model_dump(mode="json")


def test_a_revoked_or_unknown_fence_never_touches_the_part(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    fences = _issued(client, "ST30:0:2")
    assert cell_says(client, "revoke", "ST30:0:2") == "revoked"
    calls: list[str] = []
    assert execute_fenced(fences, _spec("ST30:0:2"), "f1", _paced(calls)) is None
    assert execute_fenced(fences, _spec("ST30:0:2"), "other", _paced(calls)) is None
    assert execute_fenced(fences, _spec("ST30:0:9"), "f1", _paced(calls)) is None  # never issued
    assert calls == []


def test_a_crashing_skill_is_a_nok_outcome_not_a_lost_job(redis_url: str) -> None:
    def boom(spec: JobSpec, stop: object) -> JobOutcome:
        raise RuntimeError("gripper driver fault")

    client = redis.Redis.from_url(redis_url)
    fences = _issued(client, "ST30:0:3")
    out = execute_fenced(fences, _spec("ST30:0:3"), "f1", boom)
    assert out is not None and out.outcome is Outcome.NOK and "gripper driver fault" in out.detail
    assert _record(client, "ST30:0:3")["state"] == "done"


def _paced(calls: list[str]):
    runner = _runner(calls)

    def run(spec: JobSpec, stop: object) -> JobOutcome:
        return runner(spec)

    return run


def _nut_runner(calls: list[str]):
    from tests.robot.fenced import driven

    def run(spec: JobSpec) -> JobOutcome:
        calls.append(spec.job_key)
        fasteners = driven(4)
        return JobOutcome(
            job_key=spec.job_key,
            robot_id=spec.robot_id,
            outcome=Outcome.OK,
            cycle_time_ms=60000,
            fasteners=fasteners,
        )

    return run


def test_a_stop_request_ends_the_job_at_the_next_safe_point(redis_url: str) -> None:
    """The cell asks a claimed job to stop: the worker learns it at its next renewal and
    the paced robot stops between fasteners, reporting the ones it drove."""
    import threading

    from robot.worker import Paced

    client = redis.Redis.from_url(redis_url)
    key = "ST10:0:7"
    fences = _issued(client, key)
    calls: list[str] = []
    paced = Paced(_nut_runner(calls), time_scale=20.0)  # 3 s of wall time, 4 fasteners
    spec = _spec(key).model_copy(update={"station_id": "ST10"})
    result: list[JobOutcome | None] = []
    worker = threading.Thread(
        target=lambda: result.append(execute_fenced(fences, spec, "f1", paced))
    )
    worker.start()
    while _record(client, key).get("state") != "claimed":
        time.sleep(0.05)
    time.sleep(0.5)
    assert cell_says(client, "request_stop", key) == "claimed"
    worker.join(10)
    out = result[0]
    assert out is not None and out.error_code == ErrorCode.STOPPED
    assert 0 < len(out.fasteners) < 4 and "stopped at a safe point" in out.detail
    assert _record(client, key)["state"] == "done"


def test_a_claim_is_declared_lost_only_once_it_expired(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    key = "ST30:0:8"
    fences = _issued(client, key)
    assert fences.claim(key, "f1") == "claimed"
    assert fences.claim(key, "f1") == "claimed"  # the state found: not claimed again
    assert cell_says(client, "declare_lost", key) == "claimed"  # the claim key is alive
    client.delete(claim_key(key))  # what a dead worker's claim comes to
    assert cell_says(client, "declare_lost", key) == "lost"
    out = JobOutcome(job_key=key, robot_id="R3", outcome=Outcome.OK, cycle_time_ms=1)
    assert fences.finish(out, "f1") == "lost"  # too late: kept aside, not the result
    assert _record(client, key)["state"] == "lost" and "late_outcome" in _record(client, key)


def test_a_worker_process_runs_jobs_with_the_shipped_policy(redis_url: str, tmp_path) -> None:
    """``intern worker --policy auto`` over a real broker: the job's recorded policy version
    is the shipped checkpoint's, not the expert's."""
    import os
    import subprocess
    import sys

    from cell.config import sample_config_path
    from policy.runtime import policy_version
    from robot.sim.config import default_fasteners
    from tests.robot.fenced import run_fenced

    spec = JobSpec(
        job_key="ST10:0:policy",
        station_id="ST10",
        robot_id="R1",
        part_id="P-9",
        program_no=1,
        task=Task.NUT_INSTALL,
        fasteners=default_fasteners(Task.NUT_INSTALL),
        takt_s=76,
        seed=11,
    )
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cell",
            "worker",
            "--robot",
            "R1",
            "--config",
            str(sample_config_path()),
            "--policy",
            "auto",
            "--loglevel",
            "WARNING",
        ],
        env=dict(os.environ, INTERN_REDIS_URL=redis_url),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        out = run_fenced(redis_url, spec, 180)
    finally:
        proc.terminate()
        proc.wait(30)
    assert out.job_key == spec.job_key and len(out.fasteners) == 6
    assert out.policy_version == policy_version(Task.NUT_INSTALL)


def test_a_paced_robot_walks_to_a_new_station_before_the_job() -> None:
    """The walk is the robot's: taken before a job at another station than the last one,
    recorded apart from the job's own cycle time."""
    import time

    from robot.sim.config import STATION_WALK_S
    from robot.worker import Paced

    calls: list[str] = []
    paced = Paced(_runner(calls), time_scale=1000.0)

    def at(station: str, seq: int) -> JobSpec:
        return _spec(f"{station}:0:{seq}").model_copy(update={"station_id": station})

    first = paced(at("ST10", 1))
    t0 = time.monotonic()
    moved = paced(at("ST20", 2))
    took = time.monotonic() - t0
    stayed = paced(at("ST20", 3))
    assert calls == ["ST10:0:1", "ST20:0:2", "ST20:0:3"]
    assert first.walk_ms == 0 and stayed.walk_ms == 0
    assert moved.walk_ms == round(STATION_WALK_S * 1000)
    assert moved.cycle_time_ms == first.cycle_time_ms == 61000  # the walk is not in it
    assert took >= (STATION_WALK_S + 61.0) / 1000.0
    assert paced.station == "ST20"
