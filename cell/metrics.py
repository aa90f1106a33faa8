"""Prometheus metrics.

``CellMetrics`` holds what processes observe as it happens (cycle time, PLC handshake
latency, policy latency); the orchestrator and the robot workers own one each and expose
it. ``RecordCollector`` reads, at scrape time, what the record and the broker know: open
alerts, recent cycle times, the latency from a job's end to its durable record, and the
depth of each robot's queue. The API serves both on ``/metrics``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

CYCLE_BUCKETS = (30, 40, 50, 55, 60, 65, 70, 76, 80, 90, 120, 180)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class CellMetrics:
    """Histograms and gauges a running cell process updates."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.cycle_time = Histogram("intern_cycle_time_seconds", "Robot working time per job",
                                    ["station"], buckets=CYCLE_BUCKETS, registry=self.registry)
        self.handshake = Histogram("intern_handshake_latency_seconds",
                                   "PLC JobSeq seen to JobAckSeq written", ["station"],
                                   buckets=LATENCY_BUCKETS, registry=self.registry)
        self.policy = Histogram("intern_policy_latency_seconds", "Policy inference per chunk",
                                ["robot"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("intern_queue_depth", "Jobs waiting in a robot's queue",
                                 ["queue"], registry=self.registry)
        self.open_alerts = Gauge("intern_open_alerts", "Alerts not yet cleared", ["station"],
                                 registry=self.registry)

    def observe_cycle(self, station: str, seconds: float) -> None:
        self.cycle_time.labels(station).observe(seconds)

    def observe_handshake(self, station: str, seconds: float) -> None:
        self.handshake.labels(station).observe(seconds)

    def observe_policy(self, robot: str, seconds: float) -> None:
        self.policy.labels(robot).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RecordCollector(Collector):
    """Scrape-time figures from PostgreSQL (and Redis when configured).

    A scrape never fails because a dependency is down: the figure is left out and the
    problem logged, so the metrics endpoint keeps answering.
    """

    def __init__(self, sessions: sessionmaker[Session], redis_url: str | None = None,
                 window_s: int = 3600) -> None:
        self.sessions = sessions
        self.redis_url = redis_url
        self.window_s = window_s

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            yield from self._from_record()
        except Exception as exc:  # a scrape must answer even with the record down
            log.warning("metrics: record unreachable: %s", exc)
        if self.redis_url:
            try:
                yield self._queues()
            except Exception as exc:  # same for the broker
                log.warning("metrics: broker unreachable: %s", exc)

    def _from_record(self) -> Iterator[GaugeMetricFamily]:
        alerts = GaugeMetricFamily("intern_open_alerts", "Alerts not yet cleared", labels=[
            "station"])
        cycle = GaugeMetricFamily("intern_cycle_time_recent_seconds",
                                  "Cycle time quantiles over the recent window",
                                  labels=["station", "quantile"])
        record = GaugeMetricFamily("intern_record_latency_recent_seconds",
                                   "Job end to durable record, mean over the recent window",
                                   labels=["station"])
        with self.sessions() as s:
            for st, n in s.execute(text(
                    "SELECT station_id, count(*) FROM alerts WHERE cleared_at IS NULL "
                    "GROUP BY 1")):
                alerts.add_metric([st], float(n))
            for st, p50, p95, lat in s.execute(text("""
                    SELECT j.station_id,
                           percentile_cont(0.5) WITHIN GROUP (ORDER BY j.cycle_time_ms),
                           percentile_cont(0.95) WITHIN GROUP (ORDER BY j.cycle_time_ms),
                           avg(extract(epoch FROM j.recorded_at - j.ended_at))
                    FROM stations st JOIN jobs j ON j.station_id = st.id
                    WHERE j.ended_at > now() - make_interval(secs => :w)
                      AND j.cycle_time_ms > 0
                    GROUP BY 1"""), {"w": self.window_s}):
                cycle.add_metric([st, "0.5"], p50 / 1000.0)
                cycle.add_metric([st, "0.95"], p95 / 1000.0)
                record.add_metric([st], float(lat))
        yield alerts
        yield cycle
        yield record

    def _queues(self) -> GaugeMetricFamily:
        import redis

        depth = GaugeMetricFamily("intern_queue_depth", "Jobs waiting in a robot's queue",
                                  labels=["queue"])
        with self.sessions() as s:
            robots = [r for (r,) in s.execute(text("SELECT id FROM robots ORDER BY id"))]
        client = redis.Redis.from_url(self.redis_url or "", socket_timeout=2)
        try:
            for rid in robots:
                depth.add_metric([f"robot.{rid}"], float(client.llen(f"robot.{rid}")))
        finally:
            client.close()
        return depth


def record_registry(sessions: sessionmaker[Session], redis_url: str | None
                    ) -> CollectorRegistry:
    """A registry with the record collector, for the API's ``/metrics``."""
    registry = CollectorRegistry()
    registry.register(RecordCollector(sessions, redis_url))
    return registry
