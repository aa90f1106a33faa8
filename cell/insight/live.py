"""The line now: one tile per station for the live page, from the record and the broker.

From the record: the stations, the robot assigned to each, each station's last results and
its open alerts, and its last stored PackML state. From Redis: what the orchestrator
serving the station reports now (``cell.line.telemetry.StationLive``: state and reason,
PLC connection and heartbeat, the running job) and whether each robot's worker beats its
heartbeat. A station no orchestrator reports shows its last stored state, marked as not
reported (``reporting`` false), so a dead orchestrator is visible, not hidden.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import redis
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.orm import Session

from cell.line.telemetry import RunningJob, StationLive, station_key
from cell.record.roster import roster
from robot.celery_app import heartbeat_key
from robot.jobs import ErrorCode

log = logging.getLogger(__name__)

LAST_RESULTS = 6


class Result(BaseModel):
    job_id: int
    job_seq: int
    part_id: str | None
    ok: bool
    error_code: int
    error_name: str
    cycle_time_s: float
    ended_at: datetime


class OpenAlert(BaseModel):
    id: int
    kind: str
    message: str
    part_id: str | None
    raised_at: datetime
    age_s: float
    acknowledged_by: str | None


class Tile(BaseModel):
    """One station now. ``since`` is a wall-clock Unix time (None when unknown)."""

    station_id: str
    name: str
    state: str
    reason: str
    since: float | None
    reporting: bool
    robot_id: str | None
    robot_online: bool | None  # None: the broker cannot be asked
    plc_connected: bool | None
    plc_heartbeat_age_s: float | None
    takt_s: float | None
    job: RunningJob | None
    scale: float
    results: list[Result]
    alerts: list[OpenAlert]


class LineNow(BaseModel):
    at: float
    stations: list[Tile]


def _error_name(code: int) -> str:
    try:
        return ErrorCode(code).name.lower()
    except ValueError:
        return f"error {code}"


def line_now(session: Session, redis_url: str | None) -> LineNow:
    """Every station's tile, ordered by station id."""
    stations = session.execute(
        text("""
            SELECT st.id, st.name, ev.state, ev.reason,
                   (SELECT max(r.takt_s) FROM recipes r WHERE r.station_id = st.id)
            FROM stations st
            LEFT JOIN LATERAL (
                SELECT state, reason, at FROM cell_state_events e
                WHERE e.station_id = st.id ORDER BY e.at DESC, e.id DESC LIMIT 1
            ) ev ON true
            ORDER BY st.id""")
    ).all()
    ids = [row[0] for row in stations]
    robots = {e.station_id: e.robot_id for e in roster(session) if e.station_id}
    results = _results(session, ids)
    alerts = _alerts(session, ids)
    views, online = _broker(redis_url, ids, sorted(set(robots.values())))
    tiles = []
    for sid, name, state, reason, takt in stations:
        view, robot = views.get(sid), robots.get(sid)
        tiles.append(
            Tile(
                station_id=sid,
                name=name or "",
                state=view.state if view else (state or "unknown"),
                reason=view.reason if view else (reason or "no state on record"),
                since=view.since if view else None,
                reporting=view is not None,
                robot_id=robot,
                robot_online=None if robot is None or online is None else online.get(robot),
                plc_connected=view.plc_connected if view else None,
                plc_heartbeat_age_s=view.plc_heartbeat_age_s if view else None,
                takt_s=takt,
                job=view.job if view else None,
                scale=view.scale if view else 1.0,
                results=results.get(sid, []),
                alerts=alerts.get(sid, []),
            )
        )
    return LineNow(at=time.time(), stations=tiles)


def _results(session: Session, ids: list[str]) -> dict[str, list[Result]]:
    out: dict[str, list[Result]] = {}
    rows = session.execute(
        text("""
            SELECT st, j.id, j.job_seq, j.part_id, j.ok, j.error_code, j.cycle_time_ms, j.ended_at
            FROM unnest(CAST(:ids AS text[])) AS st
            CROSS JOIN LATERAL (
                SELECT id, job_seq, part_id, ok, error_code, cycle_time_ms, ended_at FROM jobs
                WHERE station_id = st ORDER BY ended_at DESC, id DESC LIMIT :n
            ) j"""),
        {"ids": ids, "n": LAST_RESULTS},
    )
    for st, jid, seq, part, ok, code, ms, ended in rows:
        out.setdefault(st, []).append(
            Result(
                job_id=jid,
                job_seq=seq,
                part_id=part,
                ok=ok,
                error_code=code,
                error_name="ok" if ok else _error_name(code),
                cycle_time_s=ms / 1000.0,
                ended_at=ended,
            )
        )
    return out


def _alerts(session: Session, ids: list[str]) -> dict[str, list[OpenAlert]]:
    out: dict[str, list[OpenAlert]] = {}
    now = datetime.now(UTC)
    rows = session.execute(
        text("""
            SELECT station_id, id, kind, message, part_id, raised_at, acknowledged_by
            FROM alerts WHERE cleared_at IS NULL AND station_id = ANY(:ids)
            ORDER BY raised_at, id"""),
        {"ids": ids},
    )
    for st, aid, kind, message, part, raised, acked in rows:
        out.setdefault(st, []).append(
            OpenAlert(
                id=aid,
                kind=kind,
                message=message,
                part_id=part,
                raised_at=raised,
                age_s=max((now - raised).total_seconds(), 0.0),
                acknowledged_by=acked,
            )
        )
    return out


def _broker(
    redis_url: str | None, stations: list[str], robots: list[str]
) -> tuple[dict[str, StationLive], dict[str, bool] | None]:
    """The orchestrators' views of ``stations`` and the robots' heartbeats (None: no
    broker configured or reachable)."""
    if not redis_url:
        return {}, None
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    try:
        pipe = client.pipeline(transaction=False)
        for st in stations:
            pipe.get(station_key(st))
        for rid in robots:
            pipe.exists(heartbeat_key(rid))
        answers = pipe.execute()
    except (redis.RedisError, OSError) as exc:
        log.warning("live view: broker unreachable: %s", exc)
        return {}, None
    finally:
        client.close()
    views = {
        st: StationLive.model_validate_json(raw)
        for st, raw in zip(stations, answers[: len(stations)], strict=True)
        if raw is not None
    }
    beats = answers[len(stations) :]
    return views, {rid: bool(n) for rid, n in zip(robots, beats, strict=True)}
