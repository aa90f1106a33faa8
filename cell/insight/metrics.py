"""Prometheus metrics of the whole cell, read at scrape time from the record and Redis.

The API serves them on ``/metrics``; nothing is held in the API's memory, so a restarted
API loses no figure. Who feeds what:

* the record (PostgreSQL): open alerts per station (0 for a station with none, so a rule
  sees the series), recent cycle-time quantiles;
* the orchestrators, through Redis (``cell.line.telemetry``): each station's PackML state
  and how long it has been in it, whether an orchestrator reports the station at all, the
  PLC connection and heartbeat age, the handshake latencies (``JobSeq`` -> ``JobAckSeq``,
  result -> ``ResultSeq``), the durable write's latency, jobs by result, the outbox;
* the robot workers, through Redis (``robot.telemetry``, ``robot.worker``): policy
  inference latency and the executor's deadline misses, and their heartbeats (worker up);
* the broker itself: each robot queue's depth.

Every value is a count, a duration measured on one process's clock, or a 0/1: none can be
negative. A scrape never fails because a dependency is down: that source's figures are
left out and the problem logged, so ``/metrics`` keeps answering (and a rule on a missing
series, ``absent()``, sees it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TypeVar

import redis
from prometheus_client import CollectorRegistry, Metric
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from cell.line.telemetry import OrchestratorLive, StationLive, orchestrator_key, station_key
from robot.celery_app import heartbeat_key, robot_queue
from robot.telemetry import read_counters, read_histograms

log = logging.getLogger(__name__)
View = TypeVar("View", StationLive, OrchestratorLive)

# Redis sample family -> (Prometheus name, help, label names).
HISTOGRAMS = {
    "handshake_ack_seconds": (
        "intern_handshake_ack_seconds",
        "PLC JobSeq seen to JobAckSeq written (a job waiting for a robot included)",
        ["station"],
    ),
    "handshake_result_seconds": (
        "intern_handshake_result_seconds",
        "Robot result in hand to ResultSeq written (the durable write included)",
        ["station"],
    ),
    "record_latency_seconds": (
        "intern_record_latency_seconds",
        "Robot result in hand to durable (PostgreSQL or the outbox)",
        ["station"],
    ),
    "policy_inference_seconds": (
        "intern_policy_inference_seconds",
        "Wall time of one policy inference on a robot's worker",
        ["robot", "policy"],
    ),
}
COUNTERS = {
    "jobs": (
        "intern_jobs",
        "Jobs answered, by result and attempt",
        ["station", "result", "attempt"],
    ),
    "policy_deadline_misses": (
        "intern_policy_deadline_misses",
        "Control ticks the chunk executor missed its deadline on",
        ["robot", "policy"],
    ),
}


class RecordCollector(Collector):
    """Scrape-time figures from PostgreSQL and (when configured) Redis."""

    def __init__(
        self, sessions: sessionmaker[Session], redis_url: str | None = None, window_s: int = 3600
    ) -> None:
        self.sessions = sessions
        self.redis_url = redis_url
        self.window_s = window_s

    def collect(self) -> Iterator[Metric]:
        stations: list[str] = []
        robots: list[str] = []
        try:
            with self.sessions() as s:
                stations = [r for (r,) in s.execute(text("SELECT id FROM stations ORDER BY id"))]
                robots = [r for (r,) in s.execute(text("SELECT id FROM robots ORDER BY id"))]
                yield from self._from_record(s)
        except Exception as exc:  # a scrape must answer even with the record down
            log.warning("metrics: record unreachable: %s", exc)
        if self.redis_url:
            client = redis.Redis.from_url(self.redis_url, socket_timeout=2)
            try:
                yield from _samples(client)
                yield from _live(client, stations)
                yield from _robots(client, robots)
            except (redis.RedisError, OSError) as exc:  # same for the broker
                log.warning("metrics: broker unreachable: %s", exc)
            finally:
                client.close()

    def _from_record(self, s: Session) -> Iterator[Metric]:
        alerts = GaugeMetricFamily(
            "intern_open_alerts",
            "Alerts not yet cleared (0 for a station with none)",
            labels=["station"],
        )
        for st, n in s.execute(
            text("""
                SELECT coalesce(st.id, a.station_id), count(a.id)
                FROM stations st
                FULL JOIN (SELECT id, station_id FROM alerts WHERE cleared_at IS NULL) a
                  ON a.station_id = st.id
                GROUP BY 1 ORDER BY 1""")
        ):
            alerts.add_metric([st], float(n))
        yield alerts
        cycle = GaugeMetricFamily(
            "intern_cycle_time_recent_seconds",
            "Cycle time quantiles over the recent window",
            labels=["station", "quantile"],
        )
        for st, p50, p95 in s.execute(
            text("""
                SELECT station_id,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY cycle_time_ms),
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY cycle_time_ms)
                FROM jobs
                WHERE ended_at > now() - make_interval(secs => :w) AND cycle_time_ms > 0
                GROUP BY 1"""),
            {"w": self.window_s},
        ):
            cycle.add_metric([st, "0.5"], p50 / 1000.0)
            cycle.add_metric([st, "0.95"], p95 / 1000.0)
        yield cycle


def _samples(client: redis.Redis) -> Iterator[Metric]:
    for family, (name, doc, labels) in HISTOGRAMS.items():
        hist = HistogramMetricFamily(name, doc, labels=labels)
        for values, h in sorted(read_histograms(client, family).items()):
            if len(values) == len(labels):
                hist.add_metric(list(values), h.buckets, h.total)
        yield hist
    for family, (name, doc, labels) in COUNTERS.items():
        counter = CounterMetricFamily(name, doc, labels=labels)
        for values, n in sorted(read_counters(client, family).items()):
            if len(values) == len(labels):
                counter.add_metric(list(values), n)
        yield counter


def _live(client: redis.Redis, stations: list[str]) -> Iterator[Metric]:
    """The orchestrators' views of their stations and of themselves."""
    state = GaugeMetricFamily(
        "intern_station_state",
        "1 for the PackML state a station is in",
        labels=["station", "state"],
    )
    state_s = GaugeMetricFamily(
        "intern_station_state_seconds",
        "Seconds a station has been in its PackML state",
        labels=["station", "state"],
    )
    reporting = GaugeMetricFamily(
        "intern_station_reporting",
        "1 while an orchestrator serves the station and reports it, else 0",
        labels=["station"],
    )
    plc = GaugeMetricFamily(
        "intern_plc_connected", "1 while the station's PLC session is connected", labels=["station"]
    )
    beat = GaugeMetricFamily(
        "intern_plc_heartbeat_age_seconds",
        "Seconds since the PLC's HeartbeatPLC last changed",
        labels=["station"],
    )
    now = time.time()
    views = _read(client, [station_key(st) for st in stations], StationLive)
    for st, view in zip(stations, views, strict=True):
        reporting.add_metric([st], 0.0 if view is None else 1.0)
        if view is None:
            continue
        state.add_metric([st, view.state], 1.0)
        state_s.add_metric([st, view.state], max(now - view.since, 0.0))
        plc.add_metric([st], 1.0 if view.plc_connected else 0.0)
        if view.plc_heartbeat_age_s is not None:
            beat.add_metric([st], max(view.plc_heartbeat_age_s, 0.0))
    yield from (state, state_s, reporting, plc, beat)
    outbox = GaugeMetricFamily(
        "intern_outbox_entries",
        "Results waiting in an orchestrator's local outbox for PostgreSQL",
        labels=["orchestrator"],
    )
    keys = sorted(k.decode() for k in client.scan_iter(orchestrator_key("*"), count=100))
    for orch in _read(client, keys, OrchestratorLive):
        if orch is not None:
            outbox.add_metric([orch.name], float(orch.outbox))
    yield outbox


def _robots(client: redis.Redis, robots: list[str]) -> Iterator[Metric]:
    up = GaugeMetricFamily(
        "intern_worker_up", "1 while a robot's worker beats its heartbeat", labels=["robot"]
    )
    depth = GaugeMetricFamily(
        "intern_queue_depth", "Jobs waiting in a robot's queue", labels=["queue"]
    )
    pipe = client.pipeline(transaction=False)
    for rid in robots:
        pipe.exists(heartbeat_key(rid))
        pipe.llen(robot_queue(rid))
    answers = pipe.execute()
    for i, rid in enumerate(robots):
        up.add_metric([rid], 1.0 if answers[2 * i] else 0.0)
        depth.add_metric([robot_queue(rid)], float(answers[2 * i + 1]))
    yield up
    yield depth


def _read(client: redis.Redis, keys: list[str], model: type[View]) -> list[View | None]:
    """The JSON views under ``keys`` (None where absent or unreadable)."""
    if not keys:
        return []
    out: list[View | None] = []
    for raw in client.mget(keys):
        try:
            out.append(None if raw is None else model.model_validate_json(raw))
        except ValidationError:
            out.append(None)
    return out


def record_registry(sessions: sessionmaker[Session], redis_url: str | None) -> CollectorRegistry:
    """A registry with the cell's collector, for the API's ``/metrics``."""
    registry = CollectorRegistry()
    registry.register(RecordCollector(sessions, redis_url))
    return registry
