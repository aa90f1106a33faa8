"""Dispatch of jobs to robot workers over Celery, fenced in Redis, awaited from asyncio.

``Dispatcher.run`` is the one way the cell gets a job key's outcome, for a new job and
for one found unanswered after a restart or a takeover alike: it reads the key's fence
(``robot.fence``) and acts on its state. Done: the robot's real result. Claimed: wait
for it. Issued but never claimed: revoke, then issue a new fence and send. Nothing yet:
issue and send. Claim expired with no result: the robot's state cannot be known, NOK
``interrupted``.

The invariant it keeps: an outcome is returned only when the robot is provably not
working on the job (done, revoked before a claim, stopped and reported, or its claim
expired). While Redis cannot be asked, it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis
from celery import Celery
from kombu.exceptions import OperationalError
from pydantic import ValidationError

from cell.errors import Unavailable
from robot.celery_app import RUN_JOB, heartbeat_key, robot_queue
from robot.fence import (
    CLAIM_TTL_S,
    RENEW_EVERY_S,
    CellFences,
    FenceState,
    FenceView,
    record_key,
)
from robot.fence import events_channel as fence_events
from robot.jobs import ErrorCode, JobOutcome, JobSpec

log = logging.getLogger(__name__)

Abandoned = Callable[[], bool]


def _never() -> bool:
    return False


@dataclass
class _Attempt:
    """One fence being waited on, and why the cell asked it to stop (if it did)."""

    spec: JobSpec
    fence: str
    deadline: float
    abandoned: Abandoned
    stop_code: ErrorCode | None = None
    claim_missing_since: float | None = None
    robot_silent_since: float | None = None
    seen_claimed: bool = False
    vanished_since: float | None = None  # the record gone from Redis since


class Dispatcher:
    """Sends a ``JobSpec`` to its robot's queue under a fence and waits for its outcome.

    It wakes on the fence's pub/sub announcements and checks, every ``RENEW_EVERY_S``,
    the claim (a worker that died stops renewing it) and, before a claim, the robot
    worker's heartbeat (a job no live worker can take is revoked and handed back).
    """

    def __init__(self, app: Celery, client: aioredis.Redis, *, lost_after_s: float = 2.0) -> None:
        self.app = app
        self.client = client
        self.fences = CellFences(client)
        self.lost_after_s = lost_after_s

    async def alive(self, robot_id: str) -> bool | None:
        """Whether the robot's worker has beaten within its heartbeat TTL; None when Redis
        cannot be asked (a broker outage says nothing about the robot)."""
        try:
            return bool(await self.client.exists(heartbeat_key(robot_id)))
        except (redis.RedisError, OSError):
            return None

    async def view(self, job_key: str) -> FenceView:
        """The job key's fence, waiting while Redis cannot be asked."""
        warned = False
        while True:
            try:
                return await self.fences.view(job_key)
            except (redis.RedisError, OSError) as exc:
                if not warned:
                    log.warning("job %s: Redis unreachable (%s); waiting for it", job_key, exc)
                    warned = True
                await asyncio.sleep(RENEW_EVERY_S)

    async def run(
        self, spec: JobSpec, timeout_s: float, abandoned: Abandoned = _never
    ) -> JobOutcome | None:
        """The outcome of ``spec``'s job key, whatever state the key is in (see module).

        ``abandoned()`` true means the PLC gave the job up: an unclaimed fence is revoked
        (NOK ``abandoned``, nothing done), a claimed one asked to stop (its outcome, with
        ``abandoned`` if it stopped). After ``timeout_s`` the same with ``robot_timeout``.
        None: revoked before any robot claimed it because no live worker could take it;
        nothing was done and the job may be run again.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            view = await self.view(spec.job_key)
            _check_part(spec, view)
            if view.state is FenceState.DONE:
                return _result(spec, view)
            if view.state is FenceState.LOST:
                return _lost(spec)
            if view.state is FenceState.CLAIMED and view.fence:
                spec = _for_robot(spec, view.robot_id)
                attempt = _Attempt(spec, view.fence, deadline, abandoned, seen_claimed=True)
            elif view.state is FenceState.ISSUED:
                await self._revoke(spec.job_key)  # claimed meanwhile: the next look says so
                continue
            elif abandoned():
                return JobOutcome.failed(spec, ErrorCode.ABANDONED, "the PLC moved on; not started")
            else:
                fence = uuid.uuid4().hex
                issued = self.fences.issue(spec.job_key, fence, spec.robot_id, spec.part_id)
                if await self._try(issued) != FenceState.ISSUED:
                    continue
                await self._send(spec, fence)
                attempt = _Attempt(spec, fence, deadline, abandoned)
            ending = await self._wait(attempt)
            if not isinstance(ending, _Again):
                return ending

    async def _wait(self, at: _Attempt) -> JobOutcome | _Again | None:
        """Wait on one fence until the robot is provably not working on it."""
        key = at.spec.job_key
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            with contextlib.suppress(redis.RedisError, OSError):
                await pubsub.subscribe(fence_events(key))
            while True:
                try:
                    view = await self.fences.view(key)
                except (redis.RedisError, OSError):
                    at.claim_missing_since = at.robot_silent_since = None  # nothing known
                    await asyncio.sleep(RENEW_EVERY_S)
                    continue
                ending: JobOutcome | _Again | _Wait | None
                if view.state is FenceState.NONE:
                    ending = self._vanished(at)
                elif view.fence != at.fence:
                    return _AGAIN  # another attempt's fence: look at the key again
                elif view.state is FenceState.ISSUED:
                    ending = await self._unclaimed(at)
                elif view.state is FenceState.CLAIMED:
                    ending = await self._claimed(at, view)
                elif view.state is FenceState.DONE:
                    return _stopped_as(at, _result(at.spec, view))
                elif view.state is FenceState.LOST:
                    return _lost(at.spec)
                else:
                    ending = _AGAIN
                if not isinstance(ending, _Wait):
                    return ending
                with contextlib.suppress(redis.RedisError, OSError):
                    if not pubsub.subscribed:
                        await pubsub.subscribe(fence_events(key))
                    await pubsub.get_message(timeout=RENEW_EVERY_S)
                    continue
                await asyncio.sleep(RENEW_EVERY_S)
        finally:
            with contextlib.suppress(redis.RedisError, OSError):
                await pubsub.aclose()

    async def _unclaimed(self, at: _Attempt) -> JobOutcome | _Again | _Wait | None:
        """An issued fence no worker has claimed yet: revoke it when the PLC gave the job
        up, when it timed out, or when the robot's worker is gone."""
        now = time.monotonic()
        alive = await self.alive(at.spec.robot_id)
        if alive is False:
            at.robot_silent_since = at.robot_silent_since or now
        else:
            at.robot_silent_since = None
        if at.abandoned():
            why = (ErrorCode.ABANDONED, "the PLC moved on before a robot took the job")
        elif now >= at.deadline:
            why = (ErrorCode.ROBOT_TIMEOUT, "no robot took the job in time")
        elif at.robot_silent_since is not None and now - at.robot_silent_since >= self.lost_after_s:
            why = None
        else:
            return _WAIT
        if await self._revoke(at.spec.job_key) != FenceState.REVOKED:
            return _WAIT  # claimed meanwhile: wait for it
        if why is None:
            log.warning("job %s: robot %s offline; not started", at.spec.job_key, at.spec.robot_id)
            return None
        return JobOutcome.failed(at.spec, *why)

    def _vanished(self, at: _Attempt) -> JobOutcome | _Again | _Wait:
        """The record is gone (Redis lost its data). A live worker that holds the claim
        puts it back at its next renewal; wait a claim TTL for that. Then a job seen
        claimed ends ``interrupted`` (its robot's state cannot be known), and one never
        seen claimed is issued again (its message went with the data)."""
        now = time.monotonic()
        at.vanished_since = at.vanished_since or now
        if now - at.vanished_since < CLAIM_TTL_S + RENEW_EVERY_S:
            return _WAIT
        log.warning("job %s: its fence is gone from Redis", at.spec.job_key)
        return _lost(at.spec) if at.seen_claimed else _AGAIN

    async def _claimed(self, at: _Attempt, view: FenceView) -> JobOutcome | _Wait:
        """A claimed job: ask it to stop when the PLC gave it up or it timed out; end it
        ``interrupted`` only once its claim has been gone for a whole claim TTL."""
        now = time.monotonic()
        at.seen_claimed, at.vanished_since = True, None
        if view.claim_alive:
            at.claim_missing_since = None
        else:
            at.claim_missing_since = at.claim_missing_since or now
            gone_s = now - at.claim_missing_since
            if gone_s >= CLAIM_TTL_S and await self._try(
                self.fences.declare_lost(at.spec.job_key)
            ) == (FenceState.LOST):
                return _lost(at.spec)
        if at.stop_code is None:
            if at.abandoned():
                at.stop_code = ErrorCode.ABANDONED
            elif now >= at.deadline:
                at.stop_code = ErrorCode.ROBOT_TIMEOUT
            if at.stop_code is not None:
                log.info(
                    "job %s: asking the robot to stop (%s)", at.spec.job_key, at.stop_code.name
                )
                await self._try(self.fences.request_stop(at.spec.job_key))
        return _WAIT

    async def _revoke(self, job_key: str) -> str | None:
        return await self._try(self.fences.revoke(job_key))

    @staticmethod
    async def _try(call: Awaitable[str]) -> str | None:
        """A fence script's answer; None when Redis did not answer (nothing changed that
        the next look will not show)."""
        try:
            return await call
        except (redis.RedisError, OSError):
            return None

    async def _send(self, spec: JobSpec, fence: str) -> None:
        """Publish the job with its fence, retrying while the broker is unreachable. A
        message that never arrives leaves the fence unclaimed, which ``_unclaimed``
        handles; one that arrives twice is claimed once."""
        delay = 0.2
        while True:
            try:
                await asyncio.to_thread(
                    self.app.send_task,
                    RUN_JOB,
                    args=[spec.model_dump(mode="json"), fence],
                    queue=robot_queue(spec.robot_id),
                    task_id=f"job:{spec.job_key}:{fence}",
                )
                return
            except (OperationalError, redis.RedisError, OSError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


class _Again:
    """Look at the job key again (another fence is current)."""


class _Wait:
    """Keep waiting on this fence."""


_AGAIN, _WAIT = _Again(), _Wait()


def _check_part(spec: JobSpec, view: FenceView) -> None:
    """A job key names one PLC job and so one part; another part under it means the
    record's counters started again (a new database) while Redis kept the old jobs."""
    if view.part_id and spec.part_id and view.part_id != spec.part_id:
        raise Unavailable(
            f"job key {spec.job_key} in Redis belongs to part {view.part_id}, not "
            f"{spec.part_id}: the record was started afresh while Redis kept the old "
            f"jobs; remove the old jobs' keys (redis-cli --scan --pattern "
            f"'{record_key('*')}') or use a fresh Redis database"
        )


def _for_robot(spec: JobSpec, robot_id: str | None) -> JobSpec:
    """``spec`` as dispatched to the robot that holds its fence."""
    if robot_id is None or robot_id == spec.robot_id:
        return spec
    return spec.model_copy(update={"robot_id": robot_id})


def _result(spec: JobSpec, view: FenceView) -> JobOutcome:
    try:
        outcome = view.result()
    except ValidationError as exc:
        return JobOutcome.failed(spec, ErrorCode.INVALID_RESULT, f"malformed result: {exc}")
    assert outcome is not None
    return outcome


def _lost(spec: JobSpec) -> JobOutcome:
    return JobOutcome.failed(
        spec,
        ErrorCode.INTERRUPTED,
        f"robot {spec.robot_id} stopped renewing its claim with no result: "
        "its state is unknown, the part may be half done",
    )


def _stopped_as(at: _Attempt, outcome: JobOutcome) -> JobOutcome:
    """A robot that stopped because the cell asked it to: recorded with the reason."""
    if at.stop_code is None or outcome.error_code != ErrorCode.STOPPED:
        return outcome
    reason = "the PLC moved on" if at.stop_code is ErrorCode.ABANDONED else "the job timed out"
    return outcome.model_copy(
        update={"error_code": int(at.stop_code), "detail": f"{reason}; {outcome.detail}"}
    )
