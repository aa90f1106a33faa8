"""Prometheus metrics, read at scrape time from the record and the broker.

``RecordCollector`` reports open alerts, recent cycle-time quantiles, the latency from a
job's end to its durable record, and the depth of each robot's queue. The API serves it
on ``/metrics``. Nothing is held in process memory, so a restarted API loses no figure.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)


class RecordCollector(Collector):
    """Scrape-time figures from PostgreSQL (and Redis when configured).

    A scrape never fails because a dependency is down: the figure is left out and the
    problem logged, so the metrics endpoint keeps answering.
    """

    def __init__(
        self, sessions: sessionmaker[Session], redis_url: str | None = None, window_s: int = 3600
    ) -> None:
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
        alerts = GaugeMetricFamily(
            "intern_open_alerts", "Alerts not yet cleared", labels=["station"]
        )
        cycle = GaugeMetricFamily(
            "intern_cycle_time_recent_seconds",
            "Cycle time quantiles over the recent window",
            labels=["station", "quantile"],
        )
        record = GaugeMetricFamily(
            "intern_record_latency_recent_seconds",
            "Job end to durable record, mean over the recent window",
            labels=["station"],
        )
        with self.sessions() as s:
            for st, n in s.execute(
                text("SELECT station_id, count(*) FROM alerts WHERE cleared_at IS NULL GROUP BY 1")
            ):
                alerts.add_metric([st], float(n))
            for st, p50, p95, lat in s.execute(
                text("""
                    SELECT j.station_id,
                           percentile_cont(0.5) WITHIN GROUP (ORDER BY j.cycle_time_ms),
                           percentile_cont(0.95) WITHIN GROUP (ORDER BY j.cycle_time_ms),
                           avg(extract(epoch FROM j.recorded_at - j.ended_at))
                    FROM stations st JOIN jobs j ON j.station_id = st.id
                    WHERE j.ended_at > now() - make_interval(secs => :w)
                      AND j.cycle_time_ms > 0
                    GROUP BY 1"""),
                {"w": self.window_s},
            ):
                cycle.add_metric([st, "0.5"], p50 / 1000.0)
                cycle.add_metric([st, "0.95"], p95 / 1000.0)
                record.add_metric([st], float(lat))
        yield alerts
        yield cycle
        yield record

    def _queues(self) -> GaugeMetricFamily:
        import redis

        depth = GaugeMetricFamily(
            "intern_queue_depth", "Jobs waiting in a robot's queue", labels=["queue"]
        )
        with self.sessions() as s:
            robots = [r for (r,) in s.execute(text("SELECT id FROM robots ORDER BY id"))]
        client = redis.Redis.from_url(self.redis_url or "", socket_timeout=2)
        try:
            for rid in robots:
                depth.add_metric([f"robot.{rid}"], float(client.llen(f"robot.{rid}")))
        finally:
            client.close()
        return depth


def record_registry(sessions: sessionmaker[Session], redis_url: str | None) -> CollectorRegistry:
    """A registry with the record collector, for the API's ``/metrics``."""
    registry = CollectorRegistry()
    registry.register(RecordCollector(sessions, redis_url))
    return registry
