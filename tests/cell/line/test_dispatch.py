"""The dispatcher on a real Redis against the worker's side of the fences (no robot): one
path answers a job key whatever state it was left in, and never returns while a robot
may still be working on the job."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio as aioredis

from cell.errors import Unavailable
from cell.line.dispatch import Dispatcher
from robot.celery_app import heartbeat_key, make_celery, robot_queue
from robot.fence import CellFences, WorkerFences, claim_key, record_key
from robot.jobs import ErrorCode, JobOutcome, JobSpec, Outcome, Task
from tests.robot.fenced import driven

KEY = "ST10:4:7"


def _spec(key: str = KEY) -> JobSpec:
    return JobSpec(
        job_key=key,
        station_id="ST10",
        robot_id="R1",
        part_id="P-7",
        program_no=1,
        task=Task.NUT_INSTALL,
        takt_s=76,
        seed=7,
    )


def _outcome(key: str = KEY, *, fasteners: int = 2, code: ErrorCode = ErrorCode.NONE) -> JobOutcome:
    return JobOutcome(
        job_key=key,
        robot_id="R1",
        outcome=Outcome.NOK if code else Outcome.OK,
        error_code=int(code),
        cycle_time_ms=40_000,
        policy_version="nut-v3",
        fasteners=driven(fasteners),
    )


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    c = redis.Redis.from_url(redis_url)
    c.set(heartbeat_key("R1"), "{}", px=600_000)  # the robot's worker is alive
    return c


@pytest.fixture
async def dispatcher(redis_url: str) -> AsyncIterator[Dispatcher]:
    app = make_celery(redis_url)
    cell = aioredis.Redis.from_url(redis_url)
    yield Dispatcher(app, cell)
    await cell.aclose()
    app.close()


def _sent(client: redis.Redis) -> list[str]:
    """The fences of the job messages waiting in R1's queue."""
    out = []
    for raw in client.lrange(robot_queue("R1"), 0, -1):
        body = json.loads(raw)["body"]
        args = json.loads(base64.b64decode(body))[0]
        out.append(args[1])
    return out


async def test_a_job_done_while_the_cell_was_away_is_answered_with_the_robots_result(
    client: redis.Redis, dispatcher: Dispatcher
) -> None:
    assert await dispatcher.fences.issue(KEY, "f1", "R1") == "issued"
    worker = WorkerFences(client, "w")
    assert worker.claim(KEY, "f1") == "claimed"
    assert worker.finish(_outcome(), "f1") == "done"
    out = await dispatcher.run(_spec(), 60)
    assert out == _outcome()  # fasteners and policy version: the real result
    assert _sent(client) == []  # nothing sent again


async def test_a_fence_never_claimed_is_revoked_and_the_job_sent_with_a_new_one(
    client: redis.Redis, dispatcher: Dispatcher
) -> None:
    assert await dispatcher.fences.issue(KEY, "old", "R1") == "issued"  # left by a crash
    task = asyncio.create_task(dispatcher.run(_spec(), 60))
    while not _sent(client):
        await asyncio.sleep(0.05)
    (fence,) = _sent(client)
    worker = WorkerFences(client, "w")
    assert fence != "old" and worker.claim(KEY, "old") == "superseded"
    assert worker.claim(KEY, fence) == "claimed"
    worker.finish(_outcome(), fence)
    assert (await asyncio.wait_for(task, 10)).outcome is Outcome.OK


async def test_a_job_the_plc_gave_up_before_a_robot_took_it_is_revoked(
    client: redis.Redis, dispatcher: Dispatcher
) -> None:
    gone = threading.Event()
    task = asyncio.create_task(dispatcher.run(_spec(), 60, gone.is_set))
    while not _sent(client):
        await asyncio.sleep(0.05)
    gone.set()
    out = await asyncio.wait_for(task, 10)
    assert out is not None and out.error_code == ErrorCode.ABANDONED and out.cycle_time_ms == 0
    assert WorkerFences(client, "w").claim(KEY, _sent(client)[0]) == "revoked"


async def test_a_claimed_job_the_plc_gave_up_is_stopped_and_recorded_with_what_it_did(
    client: redis.Redis, dispatcher: Dispatcher
) -> None:
    gone = threading.Event()
    task = asyncio.create_task(dispatcher.run(_spec(), 60, gone.is_set))
    while not _sent(client):
        await asyncio.sleep(0.05)
    worker, fence = WorkerFences(client, "w"), _sent(client)[0]
    assert worker.claim(KEY, fence) == "claimed"
    gone.set()
    while not worker.renew(KEY, fence)[1]:  # the worker learns of the stop at a renewal
        await asyncio.sleep(0.1)
    assert not task.done()  # the robot is still working: no answer yet
    stopped = _outcome(fasteners=1, code=ErrorCode.STOPPED)
    worker.finish(stopped, fence)
    out = await asyncio.wait_for(task, 10)
    assert out is not None and out.error_code == ErrorCode.ABANDONED and len(out.fasteners) == 1


async def test_a_claim_that_expires_with_no_result_ends_interrupted_only_then(
    client: redis.Redis, dispatcher: Dispatcher
) -> None:
    assert await dispatcher.fences.issue(KEY, "f1", "R1") == "issued"
    assert WorkerFences(client, "w").claim(KEY, "f1") == "claimed"
    t0 = time.monotonic()
    out = await asyncio.wait_for(dispatcher.run(_spec(), 60), 30)
    waited = time.monotonic() - t0
    assert out is not None and out.error_code == ErrorCode.INTERRUPTED
    assert waited >= 3.0  # not before the claim (3 s) had expired
    assert client.hget(record_key(KEY), "state") == b"lost"


async def test_a_running_job_whose_record_redis_lost_is_put_back_by_its_worker(
    client: redis.Redis, dispatcher: Dispatcher
) -> None:
    """Redis restarted without its data mid-job: the worker's next renewal restores the
    record and the cell waits for the real result instead of sending the job again."""
    assert await dispatcher.fences.issue(KEY, "f1", "R1") == "issued"
    worker = WorkerFences(client, "w")
    assert worker.claim(KEY, "f1") == "claimed"
    task = asyncio.create_task(dispatcher.run(_spec(), 60))
    await asyncio.sleep(0.5)
    client.delete(record_key(KEY), claim_key(KEY))
    await asyncio.sleep(1.0)
    assert worker.renew(KEY, "f1") == (True, False)
    worker.finish(_outcome(), "f1")
    assert (await asyncio.wait_for(task, 10)) == _outcome()
    assert _sent(client) == []
    assert await CellFences(dispatcher.client).revoke(KEY) == "done"


async def test_a_job_key_holding_another_part_is_refused_not_answered(
    client: redis.Redis, dispatcher: Dispatcher
) -> None:
    """A record started afresh while Redis kept the old jobs: the old result under the
    same key is never taken for the new part's."""
    assert await dispatcher.fences.issue(KEY, "f1", "R1", "P-OLD") == "issued"
    worker = WorkerFences(client, "w")
    assert worker.claim(KEY, "f1") == "claimed"
    worker.finish(_outcome(), "f1")
    with pytest.raises(Unavailable, match="belongs to part P-OLD, not P-7"):
        await dispatcher.run(_spec(), 60)
