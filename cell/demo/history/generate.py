"""``generate_history``: write a plant's history into the record with binary COPY.

Rows are written day by day across all stations, so the time indexes grow at their end.
The rollup triggers are bypassed for the bulk load (``intern.analytics_bulk``) and the
rollups are rebuilt for the generated window afterwards, in week-long steps.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
from pydantic import BaseModel, ConfigDict, Field

from cell.demo.history.pgcopy import HEADER, TRAILER, Col, pack_rows
from cell.demo.history.plant import (
    DAY_US,
    TAKT_S,
    US,
    PlantPlan,
    planned_stops,
    plant_plan,
    shift_rows,
)
from cell.demo.history.rows import alert_cols, event_cols, fastener_cols, job_cols, part_ids
from cell.demo.history.simulate import StationHistory, StationInputs, simulate_station
from cell.errors import InvalidInput
from cell.record.jobs import recipe_hash

TABLES = (
    "jobs",
    "fastener_results",
    "cell_state_events",
    "alerts",
    "parts",
    "rollup_jobs_hourly",
    "rollup_nok_daily",
    "rollup_cycle_daily",
    "rollup_fasteners_daily",
    "rollup_state_hourly",
)


class HistoryError(InvalidInput):
    """The history cannot be generated as asked; the message says why."""


class HistoryOptions(BaseModel):
    """What to generate: ``stations`` on lines of five, ``days`` ending at ``end``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stations: int = Field(default=20, ge=1, le=200)
    days: int = Field(default=365, ge=1, le=3660)
    end: datetime | None = Field(default=None, description="UTC midnight; default today")
    seed: int = Field(default=7, ge=0)
    trace_sample: float = Field(
        default=0.01, ge=0.0, le=1.0, description="share of OK fasteners stored with a trace"
    )


@dataclass
class GenerationReport:
    start: datetime
    end: datetime
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    bytes_on_disk: int = 0


def _window(opts: HistoryOptions) -> tuple[datetime, datetime]:
    end = opts.end or datetime.now(UTC)
    end = end.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return end - timedelta(days=opts.days), end


def _us(t: datetime) -> int:
    return int(t.timestamp()) * US


def _plain_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _seed_plant(
    conn: psycopg.Connection, plan: PlantPlan, start: datetime, end: datetime
) -> dict[str, int]:
    for st in plan.stations:
        conn.execute(
            "INSERT INTO stations (id, line, name, tasks) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (id) DO NOTHING",
            (st.id, st.line, f"{st.line} {st.task.value.replace('_', ' ')}", [st.task.value]),
        )
    for rid, skills in plan.robots():
        conn.execute(
            "INSERT INTO robots (id, name, skills) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
            (rid, f"Intern {rid}", skills),
        )
    recipe_ids = {}
    for st in plan.stations:
        spec = {
            "program_no": 1,
            "task": st.task.value,
            "takt_s": TAKT_S,
            "on_nok": st.on_nok,
            "fasteners": [
                dict(
                    zip(
                        (
                            "side",
                            "position",
                            "torque_min_nm",
                            "torque_max_nm",
                            "angle_min_deg",
                            "angle_max_deg",
                        ),
                        f,
                        strict=True,
                    )
                )
                for f in st.fasteners
            ],
        }
        digest = recipe_hash(spec)
        conn.execute(
            "INSERT INTO recipes (station_id, program_no, name, task, takt_s, spec, "
            "content_hash, created_at) VALUES (%s, 1, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            (st.id, st.task.value, st.task.value, TAKT_S, json.dumps(spec), digest, start),
        )
        recipe_ids[st.id] = conn.execute(
            "SELECT id FROM recipes WHERE station_id = %s AND program_no = 1 AND content_hash = %s",
            (st.id, digest),
        ).fetchone()[0]  # type: ignore[index]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO shifts (name, starts_at, ends_at) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            shift_rows(start, end),
        )
    return recipe_ids


def _plans(plan: PlantPlan, start_us: int, end_us: int, seed: int) -> dict[str, StationInputs]:
    """Per-station inputs; swaps and PLC restarts are decided per line."""
    rng = np.random.default_rng(seed)
    stops = planned_stops(start_us, end_us)
    span = end_us - start_us
    out = {}
    for line in plan.lines:
        members = [s for s in plan.stations if s.line == line]
        swaps: dict[str, list[tuple[int, int]]] = {s.id: [] for s in members}
        t = start_us + int(rng.exponential(10) * DAY_US)
        while t < end_us - DAY_US:
            dur = int(rng.uniform(4, 30) * 3600 * US)
            swaps[members[int(rng.integers(len(members)))].id].append((t, t + dur))
            t += dur + int(rng.exponential(10) * DAY_US) + DAY_US
        restarts = sorted(
            int(x) for x in rng.integers(start_us, end_us, max(1, span // (120 * DAY_US)))
        )
        for st in members:
            # Roll-outs reach stations a few days apart: 1.1 at a third, 1.2 at two thirds.
            lag = int(rng.uniform(0, 14) * DAY_US)
            out[st.id] = StationInputs(
                start_us,
                end_us,
                stops,
                swaps[st.id],
                [start_us, start_us + span // 3 + lag, start_us + 2 * span // 3 + lag],
                restarts,
            )
    return out


def _assignments(
    conn: psycopg.Connection, plan: PlantPlan, inputs: dict[str, StationInputs], start: datetime
) -> None:
    """Assignment intervals: each station's robot, swapped out to maintenance while the
    line's spare serves; the last interval of each robot stays open."""
    rows: list[tuple[str, str | None, datetime, datetime | None, str, str]] = []

    def ts(us: int) -> datetime:
        return datetime.fromtimestamp(us / US, UTC)

    for line in plan.lines:
        spare = plan.spare(line)
        spare_rows = []
        for st in (s for s in plan.stations if s.line == line):
            frm = start
            for a, b in inputs[st.id].swaps:
                rows.append((st.home_robot, st.id, frm, ts(a), "system", "home station"))
                rows.append(
                    (st.home_robot, None, ts(a), ts(b), "sup-eva", "maintenance: scheduled service")
                )
                spare_rows.append(
                    (spare, st.id, ts(a), ts(b), "sup-eva", f"cover {st.id} during service")
                )
                frm = ts(b)
            rows.append((st.home_robot, st.id, frm, None, "system", "home station"))
        rows.extend(spare_rows)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO assignments (robot_id, station_id, valid_from, valid_to, "
            "author, reason) VALUES (%s, %s, %s, %s, %s, %s)",
            rows,
        )


def _skip_row_triggers(conn: psycopg.Connection) -> None:
    """Skip per-row triggers (foreign-key checks too) for the load when the role may, as
    pg_restore does: every row is built consistent with the rows it refers to, and the
    checks would cost more than the load itself. Without the privilege the checks run."""
    try:
        with conn.transaction():
            conn.execute("SET session_replication_role = replica")
    except psycopg.errors.InsufficientPrivilege:
        pass


def _copy(conn: psycopg.Connection, table: str, columns: str, cols: list[Col]) -> int:
    data = pack_rows(cols)
    if data:
        with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT binary)") as cp:
            cp.write(HEADER + data + TRAILER)
    return len(cols[0].values)


def generate_history(
    database_url: str, opts: HistoryOptions, progress: Callable[[str], None] | None = None
) -> GenerationReport:
    """Generate ``opts`` into the (migrated) database; refuses stations that have jobs."""
    say = progress or (lambda _msg: None)
    start, end = _window(opts)
    report = GenerationReport(start, end, {t: 0 for t in TABLES})
    plan = plant_plan(opts.stations)
    start_us, end_us = _us(start), _us(end)
    t_all = time.monotonic()
    with psycopg.connect(_plain_url(database_url)) as conn:
        taken = conn.execute(
            "SELECT DISTINCT station_id FROM jobs WHERE station_id = ANY(%s)",
            ([s.id for s in plan.stations],),
        ).fetchall()
        if taken:
            raise HistoryError(
                f"stations {', '.join(sorted(r[0] for r in taken))} already have jobs in this "
                "database; generate into a fresh database"
            )
        recipe_ids = _seed_plant(conn, plan, start, end)
        inputs = _plans(plan, start_us, end_us, opts.seed)
        _assignments(conn, plan, inputs, start)
        conn.commit()
        t = time.monotonic()
        hist: list[StationHistory] = []
        for i, st in enumerate(plan.stations):
            hist.append(simulate_station(st, inputs[st.id], opts.seed * 1000 + i))
            say(f"simulated {st.id}: {len(hist[-1].start)} jobs")
        report.seconds["simulate"] = time.monotonic() - t
        t = time.monotonic()
        conn.execute("SET intern.analytics_bulk = on")
        _skip_row_triggers(conn)
        seen_parts = {line: np.zeros(0, dtype=bool) for line in plan.lines}
        rng = np.random.default_rng(opts.seed + 1)
        for d in range(opts.days):
            a, b = start_us + d * DAY_US, start_us + (d + 1) * DAY_US
            day_rows = _write_day(conn, hist, a, b, recipe_ids, seen_parts, rng, opts, plan)
            for k, v in day_rows.items():
                report.rows[k] += v
            conn.commit()
            if d % 7 == 6 or d == opts.days - 1:
                say(
                    f"wrote {d + 1}/{opts.days} days: {report.rows['jobs']} jobs, "
                    f"{report.rows['fastener_results']} fasteners"
                )
        report.seconds["copy"] = time.monotonic() - t
        t = time.monotonic()
        conn.execute("SET intern.analytics_bulk = off")
        conn.execute("RESET session_replication_role")
        # A week of a plant's rows sorts and hashes in memory rather than in temp files.
        conn.execute("SET work_mem = '256MB'")
        for w in range(0, opts.days, 7):
            a_dt = start + timedelta(days=w)
            b_dt = min(end, a_dt + timedelta(days=7))
            conn.execute("SELECT analytics_rebuild(%s, %s)", (a_dt, b_dt))
            conn.commit()
        say("rollups rebuilt")
        report.seconds["rollups"] = time.monotonic() - t
        t = time.monotonic()
        conn.autocommit = True
        for table in TABLES:
            conn.execute(f"VACUUM (ANALYZE) {table}")
            if table.startswith("rollup_"):
                report.rows[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
        report.seconds["vacuum"] = time.monotonic() - t
        report.bytes_on_disk = conn.execute(
            "SELECT sum(pg_total_relation_size(c)) FROM unnest(%s::regclass[]) c", (list(TABLES),)
        ).fetchone()[0]  # type: ignore[index]
    report.seconds["total"] = time.monotonic() - t_all
    return report


def _write_day(
    conn: psycopg.Connection,
    hist: list[StationHistory],
    a: int,
    b: int,
    recipe_ids: dict[str, int],
    seen_parts: dict[str, np.ndarray],
    rng: np.random.Generator,
    opts: HistoryOptions,
    plan: PlantPlan,
) -> dict[str, int]:
    rows = dict.fromkeys(("jobs", "fastener_results", "cell_state_events", "alerts", "parts"), 0)
    sels = [np.flatnonzero((h.end >= a) & (h.end < b)) for h in hist]
    total = sum(len(s) for s in sels)
    ids = np.array(
        [
            r[0]
            for r in conn.execute(
                "SELECT nextval(pg_get_serial_sequence('jobs', 'id')) FROM generate_series(1, %s)",
                (total,),
            ).fetchall()
        ],
        dtype=np.int64,
    )
    new_parts: list[np.ndarray] = []
    job_blocks, fast_blocks, ev_blocks, al_blocks = [], [], [], []
    off = 0
    for h, sel in zip(hist, sels, strict=True):
        job_ids = ids[off : off + len(sel)]
        off += len(sel)
        line = h.plan.line
        if len(sel):
            top = int(h.part_no[sel].max()) + 1
            if len(seen_parts[line]) < top:
                seen_parts[line] = np.concatenate(
                    [seen_parts[line], np.zeros(top - len(seen_parts[line]), dtype=bool)]
                )
            nos = np.unique(h.part_no[sel])
            fresh = nos[~seen_parts[line][nos]]
            seen_parts[line][fresh] = True
            new_parts.append(part_ids(line, fresh))
        job_blocks.append(job_cols(h, sel, job_ids, recipe_ids[h.plan.id], plan))
        fast_blocks.append(fastener_cols(h, sel, job_ids, a, rng, opts.trace_sample))
        esel = np.flatnonzero((h.ev_at >= a) & (h.ev_at < b))
        ev_blocks.append(event_cols(h, esel))
        asel = np.flatnonzero((h.al_raised >= a) & (h.al_raised < b))
        al_blocks.append(alert_cols(h, asel, sel, job_ids))
    parts = np.concatenate(new_parts) if new_parts else np.zeros(0, dtype="S1")
    first_seen = np.full(len(parts), a, dtype=np.int64)
    rows["parts"] = _copy(
        conn, "parts", "part_id, first_seen", [Col("text", parts), Col("timestamptz", first_seen)]
    )
    for table, blocks, key in (
        ("jobs", job_blocks, "jobs"),
        ("fastener_results", fast_blocks, "fastener_results"),
        ("cell_state_events", ev_blocks, "cell_state_events"),
        ("alerts", al_blocks, "alerts"),
    ):
        columns = blocks[0][0]
        cols = [
            Col(
                c.kind,
                np.concatenate([blk[1][i].values for blk in blocks]),
                None if c.null is None else np.concatenate([blk[1][i].null for blk in blocks]),
                None
                if c.lengths is None
                else np.concatenate([blk[1][i].lengths for blk in blocks]),
            )
            for i, c in enumerate(blocks[0][1])
        ]
        rows[key] = _copy(conn, table, columns, cols)
    return rows
