"""Prometheus samples kept in Redis: counters and histograms that several processes add to.

Why Redis: the figures an operator alerts on are seen by processes on different hosts
(the orchestrator beside the PLC, each robot's worker on its own PC), none of which serves
HTTP. Redis is already the one broker they all reach, so each adds its observations there
and the API's collector reads them at scrape time (``cell.insight.metrics``): one
``/metrics`` for the whole cell, counters that survive a process restart, and no port to
open on a robot. Prometheus' multiprocess mode would need one host and one folder shared
by all writers, which a line does not have.

Layout: one Redis hash per metric family. A counter's fields are its label values joined
by ``|``; a histogram's are ``<labels>|<bucket bound>`` (observations in that bucket, not
cumulative), ``<labels>|sum`` and ``<labels>|count``. Label values never contain ``|``
(station and robot ids are ``[A-Za-z0-9_.-]``).

Writers batch in memory (``Samples``) and send a batch in one pipeline; a batch that
cannot be sent is kept for the next try, so a Redis restart loses nothing but time.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import defaultdict
from dataclasses import dataclass

import redis

PREFIX = "intern:metrics"
# Seconds: from a fast OPC UA write (a few ms) to a slow robot or record (tens of s).
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
Labels = tuple[str, ...]


def family_key(kind: str, name: str) -> str:
    """The Redis hash of metric family ``name`` (``kind``: counter or histogram)."""
    return f"{PREFIX}:{kind}:{name}"


def _bound(le: float) -> str:
    return "+Inf" if math.isinf(le) else repr(le)


class Samples:
    """Observations of one process waiting to be sent to Redis; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], float] = defaultdict(float)
        self._sums: dict[tuple[str, str], float] = defaultdict(float)

    def inc(self, name: str, labels: Labels, by: float = 1.0) -> None:
        """Add ``by`` (>= 0) to counter ``name`` at ``labels``."""
        with self._lock:
            self._counts[(family_key("counter", name), "|".join(labels))] += max(by, 0.0)

    def observe(self, name: str, labels: Labels, value: float) -> None:
        """Put ``value`` (clamped at 0) into histogram ``name`` at ``labels``."""
        value = max(value, 0.0)
        i = bisect.bisect_left(LATENCY_BUCKETS, value)
        le = LATENCY_BUCKETS[i] if i < len(LATENCY_BUCKETS) else math.inf
        key, lab = family_key("histogram", name), "|".join(labels)
        with self._lock:
            self._counts[(key, f"{lab}|{_bound(le)}")] += 1
            self._counts[(key, f"{lab}|count")] += 1
            self._sums[(key, f"{lab}|sum")] += value

    def send(self, client: redis.Redis) -> bool:
        """Send what is waiting in one pipeline; False (and kept) when Redis fails."""
        with self._lock:
            counts, sums = dict(self._counts), dict(self._sums)
            self._counts.clear()
            self._sums.clear()
        if not counts and not sums:
            return True
        try:
            pipe = client.pipeline(transaction=False)
            for (key, field), n in counts.items():
                pipe.hincrbyfloat(key, field, n)
            for (key, field), total in sums.items():
                pipe.hincrbyfloat(key, field, total)
            pipe.execute()
            return True
        except (redis.RedisError, OSError):
            with self._lock:  # keep them for the next try
                for k, n in counts.items():
                    self._counts[k] += n
                for k, total in sums.items():
                    self._sums[k] += total
            return False


@dataclass(frozen=True)
class Histogram:
    """One histogram's samples: cumulative ``(bound, count)`` pairs ending at +Inf."""

    buckets: list[tuple[str, float]]
    total: float
    count: float


def read_counters(client: redis.Redis, name: str) -> dict[Labels, float]:
    """Every series of counter ``name``: label values -> value."""
    raw = client.hgetall(family_key("counter", name))
    return {tuple(_text(k).split("|")): float(v) for k, v in raw.items()}


def read_histograms(client: redis.Redis, name: str) -> dict[Labels, Histogram]:
    """Every series of histogram ``name``: label values -> its cumulative buckets."""
    raw = client.hgetall(family_key("histogram", name))
    per: dict[Labels, dict[str, float]] = defaultdict(dict)
    for k, v in raw.items():
        *labels, field = _text(k).split("|")
        per[tuple(labels)][field] = float(v)
    return {labels: _cumulative(fields) for labels, fields in per.items()}


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _cumulative(fields: dict[str, float]) -> Histogram:
    running, buckets = 0.0, []
    for le in (*LATENCY_BUCKETS, math.inf):
        running += fields.get(_bound(le), 0.0)
        buckets.append((_bound(le), running))
    return Histogram(buckets, fields.get("sum", 0.0), fields.get("count", running))
