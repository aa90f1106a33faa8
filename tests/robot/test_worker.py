"""The run-once guard on a real Redis: a job key never runs twice."""

import redis

from robot.jobs import ErrorCode, JobOutcome, JobSpec, Outcome, Task
from robot.worker import RunOnce, execute_once


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


def test_second_delivery_returns_the_first_outcome_without_running(redis_url: str) -> None:
    calls: list[str] = []
    guard = RunOnce(redis.Redis.from_url(redis_url), "w1")
    first = execute_once(guard, _spec(), _runner(calls))
    again = execute_once(guard, _spec(), _runner(calls))
    assert calls == ["ST30:0:1"]
    assert again == first


def test_delivery_after_a_worker_died_mid_job_is_not_run(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    dead = RunOnce(client, "worker-that-died")
    assert dead.claim("ST30:0:2")  # claimed, never finished: the process was killed
    calls: list[str] = []
    out = execute_once(RunOnce(client, "restarted"), _spec("ST30:0:2"), _runner(calls))
    assert calls == []
    assert out.outcome is Outcome.NOK and out.error_code == ErrorCode.INTERRUPTED


def test_a_crashing_skill_is_a_nok_outcome_not_a_lost_job(redis_url: str) -> None:
    def boom(spec: JobSpec) -> JobOutcome:
        raise RuntimeError("gripper driver fault")

    guard = RunOnce(redis.Redis.from_url(redis_url), "w1")
    out = execute_once(guard, _spec("ST30:0:3"), boom)
    assert out.outcome is Outcome.NOK and "gripper driver fault" in out.detail
    assert guard.previous("ST30:0:3")["state"] == "done"


def test_a_worker_process_runs_jobs_with_the_shipped_policy(redis_url: str, tmp_path) -> None:
    """``intern worker --policy auto`` over a real broker: the job's recorded policy version
    is the shipped checkpoint's, not the expert's."""
    import os
    import subprocess
    import sys

    from cell.config import sample_config_path
    from policy.runtime import policy_version
    from robot.celery_app import RUN_JOB, make_celery, robot_queue
    from robot.sim.config import default_fasteners

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
    app = make_celery(redis_url)
    try:
        result = app.send_task(
            RUN_JOB, args=[spec.model_dump(mode="json")], queue=robot_queue("R1")
        )
        out = JobOutcome.model_validate(result.get(timeout=180))
    finally:
        proc.terminate()
        proc.wait(30)
        app.close()
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
