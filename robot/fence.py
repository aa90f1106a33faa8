"""Fences: one token per attempt at a job, kept in Redis, that the cell and the robot's
worker both move through a job's life with atomic scripts.

A job key's record (a Redis hash) holds the current fence and its state::

    issued  --claim-->  claimed  --finish-->  done
      |                   |  \\--(claim expired, declared by the cell)--> lost
      revoke              stop requested (the worker reads it at its next renewal)
      v
    revoked  --issue a new fence-->  issued

The cell issues a fence before it sends the job. The worker claims it before it touches
the part; only an issued fence can be claimed, so a revoked or superseded fence is
refused and a job key is claimed at most once. While it works the worker renews a claim
key that expires ``CLAIM_TTL_S`` after its last renewal; a worker that dies stops
renewing. A Redis that lost its data (restarted without persistence) has the record of a
running job put back by the worker's next renewal, or by its result.

Only the cell revokes (an unclaimed fence), asks a claimed job to stop, or
declares a claim lost (claimed, no claim key, no result), and every change is one Lua
script, so the cell and the worker can never both win a race.

This module is shared by both sides and imports neither the cell nor torch.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

import redis
import redis.asyncio as aioredis

from robot.jobs import JobOutcome

RECORD_TTL_S = 7 * 24 * 3600
CLAIM_TTL_S = 3.0  # a claim not renewed for this long belongs to a worker that died
RENEW_EVERY_S = 0.5


class FenceState(StrEnum):
    NONE = "none"  # never issued
    ISSUED = "issued"
    CLAIMED = "claimed"
    DONE = "done"
    REVOKED = "revoked"
    LOST = "lost"


def record_key(job_key: str) -> str:
    return f"intern:job:{job_key}"


def claim_key(job_key: str) -> str:
    return f"intern:job:{job_key}:claim"


def events_channel(job_key: str) -> str:
    """Pub/sub channel on which every change of the job's record is announced."""
    return f"intern:job:{job_key}:events"


# KEYS[1] record, KEYS[2] claim key, KEYS[3] events channel for every script.
_ISSUE = """
local state = redis.call('HGET', KEYS[1], 'state')
if state and state ~= 'revoked' then return 'exists' end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'state', 'issued', 'fence', ARGV[1], 'robot', ARGV[2],
  'issued_at', ARGV[3], 'stop', '0', 'part', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', KEYS[3], 'issued')
return 'issued'
"""
_CLAIM = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'none' end
if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[1] then return 'superseded' end
if state ~= 'issued' then return state end
redis.call('HSET', KEYS[1], 'state', 'claimed', 'worker', ARGV[2], 'started_at', ARGV[3])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[4])
redis.call('PUBLISH', KEYS[3], 'claimed')
return 'claimed'
"""
_RENEW = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'state', 'claimed', 'fence', ARGV[1], 'stop', '0', 'restored', '1')
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[1]
  or redis.call('HGET', KEYS[1], 'state') ~= 'claimed' then return {0, '0'} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {1, redis.call('HGET', KEYS[1], 'stop')}
"""
_FINISH = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'state', 'claimed', 'fence', ARGV[1], 'restored', '1')
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[1] then return 'superseded' end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'claimed' then
  redis.call('HSET', KEYS[1], 'state', 'done', 'outcome', ARGV[2], 'ended_at', ARGV[3])
  redis.call('DEL', KEYS[2])
  redis.call('PUBLISH', KEYS[3], 'done')
  return 'done'
end
if state == 'lost' then
  redis.call('HSET', KEYS[1], 'late_outcome', ARGV[2], 'ended_at', ARGV[3])
end
return state
"""
_REVOKE = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'issued' then return state or 'none' end
redis.call('HSET', KEYS[1], 'state', 'revoked')
redis.call('PUBLISH', KEYS[3], 'revoked')
return 'revoked'
"""
_STOP = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'claimed' then redis.call('HSET', KEYS[1], 'stop', '1') end
return state or 'none'
"""
_DECLARE_LOST = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'claimed' or redis.call('EXISTS', KEYS[2]) == 1 then return state or 'none' end
redis.call('HSET', KEYS[1], 'state', 'lost')
redis.call('PUBLISH', KEYS[3], 'lost')
return 'lost'
"""


@dataclass(frozen=True)
class FenceView:
    """A job key's record as read at one moment."""

    state: FenceState
    fence: str | None = None
    robot_id: str | None = None
    part_id: str | None = None
    claim_alive: bool = False
    stop_requested: bool = False
    outcome: dict[str, Any] | None = None

    def result(self) -> JobOutcome | None:
        """The robot's outcome, once done (raises ``ValidationError`` if malformed)."""
        return None if self.outcome is None else JobOutcome.model_validate(self.outcome)


def _keys(job_key: str) -> list[str]:
    return [record_key(job_key), claim_key(job_key), events_channel(job_key)]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class WorkerFences:
    """The worker's side (synchronous: it runs in a Celery task)."""

    def __init__(self, client: redis.Redis, worker_id: str) -> None:
        self.client = client
        self.worker_id = worker_id

    def _run(self, script: str, job_key: str, *args: str | float) -> Any:
        return self.client.eval(script, 3, *_keys(job_key), *args)

    def claim(self, job_key: str, fence: str) -> str:
        """'claimed' if this worker now owns the attempt; else why not ('revoked',
        'superseded', 'claimed', 'done', 'lost', 'none')."""
        ttl_ms = int(CLAIM_TTL_S * 1000)
        return _text(self._run(_CLAIM, job_key, fence, self.worker_id, time.time(), ttl_ms))

    def renew(self, job_key: str, fence: str) -> tuple[bool, bool]:
        """(still ours, stop requested) after extending the claim by ``CLAIM_TTL_S``."""
        ttl_ms = int(CLAIM_TTL_S * 1000)
        ours, stop = self._run(_RENEW, job_key, fence, ttl_ms, RECORD_TTL_S)
        return bool(ours), _text(stop) == "1"

    def finish(self, outcome: JobOutcome, fence: str, deadline_s: float = 3600.0) -> str:
        """Store the outcome under the fence ('done'), retrying while Redis is away.

        Returns the state found instead when the attempt is no longer this worker's:
        'lost' (the cell gave it up; the outcome is kept beside, as ``late_outcome``)."""
        value = json.dumps(outcome.model_dump(mode="json"))
        end = time.monotonic() + deadline_s
        while True:
            try:
                args = (fence, value, time.time(), RECORD_TTL_S)
                return _text(self._run(_FINISH, outcome.job_key, *args))
            except (redis.ConnectionError, redis.TimeoutError):
                if time.monotonic() > end:
                    raise
                time.sleep(0.5)


class CellFences:
    """The cell's side (asyncio)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def _run(self, script: str, job_key: str, *args: str | float) -> str:
        return _text(await self.client.eval(script, 3, *_keys(job_key), *args))

    async def view(self, job_key: str) -> FenceView:
        """The record now (raises ``redis.RedisError`` / ``OSError`` when unreachable)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(record_key(job_key))
        pipe.exists(claim_key(job_key))
        raw, alive = await pipe.execute()
        fields = {_text(k): _text(v) for k, v in cast(dict[bytes, bytes], raw).items()}
        if not fields:
            return FenceView(FenceState.NONE)
        outcome = fields.get("outcome")
        return FenceView(
            state=FenceState(fields["state"]),
            fence=fields.get("fence"),
            robot_id=fields.get("robot"),
            part_id=fields.get("part"),
            claim_alive=bool(alive),
            stop_requested=fields.get("stop") == "1",
            outcome=None if outcome is None else json.loads(outcome),
        )

    async def issue(self, job_key: str, fence: str, robot_id: str, part_id: str = "") -> str:
        """'issued'; 'exists' when the key holds a fence that is not revoked."""
        args = (fence, robot_id, time.time(), RECORD_TTL_S, part_id)
        return await self._run(_ISSUE, job_key, *args)

    async def revoke(self, job_key: str) -> str:
        """'revoked' if the fence was issued and not claimed; else the state found."""
        return await self._run(_REVOKE, job_key)

    async def request_stop(self, job_key: str) -> str:
        """Ask a claimed job to stop at its next safe point; returns the state found."""
        return await self._run(_STOP, job_key)

    async def declare_lost(self, job_key: str) -> str:
        """'lost' if the job is claimed and its claim expired; else the state found."""
        return await self._run(_DECLARE_LOST, job_key)
