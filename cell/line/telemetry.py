"""What a running orchestrator tells the plant: the line now, and figures to alert on.

Two things go to Redis, the broker every process of the cell already reaches (why Redis
and not a ``/metrics`` per process: ``robot.telemetry``):

* each station's live view (``StationLive``: PackML state and reason, since when, the PLC
  connection and heartbeat, the running job and its robot), rewritten at every state
  change and every ``REPORT_EVERY_S``, with a time to live, so a view that stops being
  rewritten (the orchestrator died) disappears within ``LIVE_TTL_S``; and the
  orchestrator's own view (its outbox backlog);
* samples (``robot.telemetry.Samples``): the handshake latencies as the PLC sees them
  (``handshake_ack_seconds``: a new ``JobSeq`` seen to ``JobAckSeq`` written, a job held
  for want of a robot included; ``handshake_result_seconds``: the robot's result in hand
  to ``ResultSeq`` written, the durable write included), the durable write alone
  (``record_latency_seconds``) and the jobs by result (``jobs``).

Nothing here waits on Redis in a station's loop: observations are kept in memory and the
report task sends them; a Redis outage only delays them. The API reads all of it
(``cell.insight.metrics`` for ``/metrics``, ``cell.insight.live`` for the live page).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import redis
from pydantic import BaseModel

from cell.packml import PackML
from mes_bridge.channel import PlcLiveness
from mes_bridge.session import StationChannel
from robot.telemetry import Samples

log = logging.getLogger(__name__)

REPORT_EVERY_S = 0.5
LIVE_TTL_S = 5.0
LIVE_PREFIX = "intern:live"


def station_key(station_id: str) -> str:
    return f"{LIVE_PREFIX}:station:{station_id}"


def orchestrator_key(name: str) -> str:
    return f"{LIVE_PREFIX}:orchestrator:{name}"


class RunningJob(BaseModel):
    """The job a station's robot works on. ``elapsed_s`` is line time (the cell's clock)
    at ``StationLive.at``; it grows by ``StationLive.scale`` per wall second after."""

    job_seq: int
    part_id: str | None
    program_no: int
    robot_id: str
    takt_s: float
    elapsed_s: float


class StationLive(BaseModel):
    """One station as its orchestrator sees it now; ``at`` and ``since`` are wall-clock
    Unix times."""

    station_id: str
    state: str
    state_code: int
    reason: str
    since: float
    plc_connected: bool
    plc_liveness: str
    plc_heartbeat_age_s: float | None
    job: RunningJob | None
    orchestrator: str
    scale: float
    at: float


class OrchestratorLive(BaseModel):
    name: str
    stations: list[str]
    outbox: int
    at: float


@dataclass(frozen=True)
class Started:
    """A job handed to a robot, as the live view shows it; ``at`` is line time."""

    job_seq: int
    part_id: str | None
    program_no: int
    robot_id: str
    takt_s: float
    at: datetime


@dataclass
class LiveState:
    """What a station loop keeps for its live view (the loop owns and updates it)."""

    state: PackML = PackML.UNDEFINED
    reason: str = ""
    since: float = field(default_factory=time.time)
    seen: float = 0.0  # monotonic time the current PLC job was first seen
    running: Started | None = None


class Telemetry:
    """One orchestrator's observations; ``report`` sends them while the line runs."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.samples = Samples()
        self._changed = asyncio.Event()

    def moved(self, live: LiveState, state: PackML, reason: str) -> None:
        """A station went to ``state``: its view is sent at once."""
        live.state, live.reason, live.since = state, reason, time.time()
        self._changed.set()

    def acknowledged(self, station_id: str, seconds: float) -> None:
        self.samples.observe("handshake_ack_seconds", (station_id,), seconds)

    def published(self, station_id: str, seconds: float) -> None:
        self.samples.observe("handshake_result_seconds", (station_id,), seconds)

    def recorded(self, station_id: str, ok: bool, attempt: int, seconds: float) -> None:
        self.samples.observe("record_latency_seconds", (station_id,), seconds)
        self.samples.inc("jobs", (station_id, "ok" if ok else "nok", str(attempt)))

    async def report(
        self,
        redis_url: str,
        stations: Sequence[tuple[str, LiveState, StationChannel]],
        now: Callable[[], datetime],
        scale: float,
        outbox: Callable[[], int],
    ) -> None:
        """Send the views and samples until cancelled (then once more, best effort)."""
        client = redis.Redis.from_url(redis_url, socket_timeout=2.0)

        def snapshot() -> tuple[list[StationLive], OrchestratorLive]:
            views = [_view(self.name, st, live, ch, now(), scale) for st, live, ch in stations]
            names = [s for s, _, _ in stations]
            mine = OrchestratorLive(name=self.name, stations=names, outbox=outbox(), at=time.time())
            return views, mine

        try:
            while True:
                self._changed.clear()  # a change while sending wakes the next round
                await asyncio.to_thread(self._send, client, *snapshot())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), REPORT_EVERY_S)
        finally:
            self._send(client, *snapshot())  # the stations' last states (Stopped)
            client.close()

    def _send(self, client: redis.Redis, views: list[StationLive], mine: OrchestratorLive) -> None:
        ttl = int(LIVE_TTL_S * 1000)
        try:
            pipe = client.pipeline(transaction=False)
            for v in views:
                pipe.set(station_key(v.station_id), v.model_dump_json(), px=ttl)
            pipe.set(orchestrator_key(mine.name), mine.model_dump_json(), px=ttl)
            pipe.execute()
        except (redis.RedisError, OSError) as exc:
            log.debug("live view not sent: %s", exc)
        self.samples.send(client)


def _view(
    name: str,
    station_id: str,
    live: LiveState,
    channel: StationChannel,
    now: datetime,
    scale: float,
) -> StationLive:
    job, run = None, live.running
    if run is not None:
        job = RunningJob(
            job_seq=run.job_seq,
            part_id=run.part_id,
            program_no=run.program_no,
            robot_id=run.robot_id,
            takt_s=run.takt_s,
            elapsed_s=max((now - run.at).total_seconds(), 0.0),
        )
    age = channel.plc_heartbeat_age()
    liveness = channel.plc_liveness()
    return StationLive(
        station_id=station_id,
        state=live.state.name.lower(),
        state_code=int(live.state),
        reason=live.reason,
        since=live.since,
        plc_connected=liveness is not PlcLiveness.DISCONNECTED,
        plc_liveness=liveness.value,
        plc_heartbeat_age_s=None if age is None else round(age, 1),
        job=job,
        orchestrator=name,
        scale=scale,
        at=time.time(),
    )
