"""``/metrics`` after a short run on real parts (PLC simulator, orchestrator, worker
processes, PostgreSQL, Redis): every family is there with plausible values, a station
without alerts reads 0, and a robot's policy figures reach it from the worker side."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import redis
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from cell.insight.metrics import record_registry
from cell.packml import PackML
from cell.record import models as m_
from mes_bridge.tags import Tag
from robot.schema import ACTION_DIM, Observation
from robot.telemetry import Samples
from robot.worker import MeasuredPolicy
from tests.cell.harness import running_line, sample_line

SCALE = 40.0  # a ~55 s nut job takes ~1.4 s of wall time


def scrape(url: str, redis_url: str | None) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name -> [(labels, value)] as Prometheus would read ``/metrics``."""
    engine = create_engine(url)
    try:
        body = generate_latest(record_registry(sessionmaker(engine), redis_url)).decode()
    finally:
        engine.dispose()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def one(samples: dict, name: str, **labels: str) -> float:
    (value,) = [v for lab, v in samples.get(name, []) if labels.items() <= lab.items()]
    return value


@pytest.mark.slow
async def test_metrics_after_a_short_run(
    tmp_path: Path, make_database: Callable[[], str], redis_url: str, workers
) -> None:
    line, cfg = sample_line(tmp_path, stations=("ST20", "ST30"))
    w = workers(cfg, SCALE)
    for robot in ("R2", "R3"):
        w.start(robot)
    db = make_database()
    async with running_line(line, db, redis_url, tmp_path, scale=SCALE, parts=None) as run:
        await run.until(
            lambda: all(run.plc(st, Tag.RESULT_ACK_SEQ) >= 2 for st in ("ST20", "ST30")),  # type: ignore[operator]
            120,
            "two jobs latched at each station",
        )
    # Stopped: the last views stay readable for a few seconds, the alerts stay as set here.
    with Session(create_engine(db)) as s:
        s.execute(text("UPDATE alerts SET cleared_at = now() WHERE station_id = 'ST20'"))
        s.add(m_.Alert(station_id="ST30", kind="nok", error_code=301, message="drop"))
        s.commit()
        open_st30 = s.scalar(
            text("SELECT count(*) FROM alerts WHERE station_id = 'ST30' AND cleared_at IS NULL")
        )
    m = await asyncio.to_thread(scrape, db, redis_url)
    for st in ("ST20", "ST30"):
        assert one(m, "intern_station_reporting", station=st) == 1.0
        assert one(m, "intern_plc_connected", station=st) == 1.0
        assert 0 <= one(m, "intern_plc_heartbeat_age_seconds", station=st) < 5
        (state,) = [lab["state"] for lab, _ in m["intern_station_state"] if lab["station"] == st]
        assert state in {p.name.lower() for p in PackML}
        assert one(m, "intern_station_state_seconds", station=st) >= 0
        jobs = sum(v for lab, v in m["intern_jobs_total"] if lab["station"] == st)
        assert jobs >= 2
        for hist in ("handshake_ack", "handshake_result", "record_latency"):
            count = one(m, f"intern_{hist}_seconds_count", station=st)
            total = one(m, f"intern_{hist}_seconds_sum", station=st)
            inf = one(m, f"intern_{hist}_seconds_bucket", station=st, le="+Inf")
            assert count == inf >= 2 and 0 <= total / count < 5, (hist, count, total)
    assert one(m, "intern_open_alerts", station="ST20") == 0.0
    assert one(m, "intern_open_alerts", station="ST30") == open_st30 >= 1
    assert one(m, "intern_worker_up", robot="R2") == 1.0
    assert {lab["robot"]: v in (0.0, 1.0) for lab, v in m["intern_worker_up"]} == dict.fromkeys(
        ("R1", "R2", "R3"), True
    )
    assert one(m, "intern_queue_depth", queue="robot.R2") >= 0
    (outbox,) = m["intern_outbox_entries"]
    assert outbox[1] == 0.0
    assert all(v >= 0 for series in m.values() for _, v in series)


@dataclass
class _Stats:
    deadline_misses: int = 0


class _Chunks:
    """A small real ChunkPolicy: a fixed chunk, and an executor's miss counter (one miss
    per inference, as a policy too slow for its control period would have)."""

    version = "tiny-1"

    def __init__(self) -> None:
        self.stats = _Stats()

    def infer(self, obs: Observation, prefix: np.ndarray | None = None) -> np.ndarray:
        self.stats.deadline_misses += 1
        return np.zeros((4, ACTION_DIM), dtype=np.float32)

    def reset(self) -> None:
        self.stats.deadline_misses = 0


def test_policy_figures_from_a_worker_reach_metrics(history_url: str, redis_url: str) -> None:
    samples = Samples()
    policy = MeasuredPolicy(_Chunks(), samples, "R7")
    policy.reset()
    obs = Observation(images={}, state=np.zeros(3, dtype=np.float32), instruction="")
    for _ in range(3):
        assert policy.infer(obs).shape == (4, ACTION_DIM)
    assert samples.send(redis.Redis.from_url(redis_url))
    m = scrape(history_url, redis_url)
    assert one(m, "intern_policy_inference_seconds_count", robot="R7", policy="tiny-1") == 3
    assert one(m, "intern_policy_deadline_misses_total", robot="R7", policy="tiny-1") == 3
    assert 0 < one(m, "intern_policy_inference_seconds_sum", robot="R7") < 1
