"""The run-once guard on a real Redis: a job key never runs twice."""

import redis

from robot.jobs import ErrorCode, JobOutcome, JobSpec, Outcome, Task
from robot.worker import RunOnce, execute_once


def _spec(key: str = "ST30:0:1") -> JobSpec:
    return JobSpec(job_key=key, station_id="ST30", robot_id="R3", part_id="P-1", program_no=1,
                   task=Task.MATERIAL_HANDLING, takt_s=76, seed=1)


def _runner(calls: list[str]):
    def run(spec: JobSpec) -> JobOutcome:
        calls.append(spec.job_key)
        return JobOutcome(job_key=spec.job_key, robot_id=spec.robot_id, outcome=Outcome.OK,
                          cycle_time_ms=61000)
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
