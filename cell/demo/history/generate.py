"""``generate_history``: write a plant's history into the record with binary COPY.

Rows are written day by day across all stations, so the time indexes grow at their end.
The rollup triggers are bypassed for the bulk load (``intern.analytics_bulk``) and the
rollups are rebuilt for the generated window afterwards, in week-long steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from pydantic import BaseModel, ConfigDict, Field

from cell.demo.history.pgcopy import HEADER, TRAILER, Col, pack_rows
from cell.demo.history.plant import DAY_US, US, PlantPlan, plant_plan
from cell.demo.history.rows import Block, alert_cols, event_cols, fastener_cols, job_cols, part_ids
from cell.demo.history.seed import seed_plant, station_inputs, write_assignments
from cell.demo.history.simulate import StationHistory, simulate_station
from cell.errors import InvalidInput

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


def _scalar(conn: psycopg.Connection, query: str, params: tuple[object, ...] = ()) -> Any:
    """The first column of the query's one row (an aggregate, or a row known to exist)."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise RuntimeError(f"no row from {query!r}")
    return row[0]


def _plain_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


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
        _refuse_taken(conn, plan)
        recipe_ids = seed_plant(conn, plan, start, end)
        inputs = station_inputs(plan, start_us, end_us, opts.seed)
        write_assignments(conn, plan, inputs, start)
        conn.commit()
        t = time.monotonic()
        hist: list[StationHistory] = []
        for i, st in enumerate(plan.stations):
            hist.append(simulate_station(st, inputs[st.id], opts.seed * 1000 + i))
            say(f"simulated {st.id}: {len(hist[-1].start)} jobs")
        report.seconds["simulate"] = time.monotonic() - t
        t = time.monotonic()
        _copy_days(conn, hist, start_us, recipe_ids, opts, plan, report, say)
        report.seconds["copy"] = time.monotonic() - t
        t = time.monotonic()
        _rebuild_rollups(conn, start, end, opts.days)
        say("rollups rebuilt")
        report.seconds["rollups"] = time.monotonic() - t
        t = time.monotonic()
        _vacuum(conn, report)
        report.seconds["vacuum"] = time.monotonic() - t
        report.bytes_on_disk = _scalar(
            conn,
            "SELECT sum(pg_total_relation_size(c)) FROM unnest(%s::regclass[]) c",
            (list(TABLES),),
        )
    report.seconds["total"] = time.monotonic() - t_all
    return report


def _refuse_taken(conn: psycopg.Connection, plan: PlantPlan) -> None:
    """Raise HistoryError if any of the plan's stations already has jobs."""
    taken = conn.execute(
        "SELECT DISTINCT station_id FROM jobs WHERE station_id = ANY(%s)",
        ([s.id for s in plan.stations],),
    ).fetchall()
    if taken:
        raise HistoryError(
            f"stations {', '.join(sorted(r[0] for r in taken))} already have jobs in this "
            "database; generate into a fresh database"
        )


def _copy_days(
    conn: psycopg.Connection,
    hist: list[StationHistory],
    start_us: int,
    recipe_ids: dict[str, int],
    opts: HistoryOptions,
    plan: PlantPlan,
    report: GenerationReport,
    say: Callable[[str], None],
) -> None:
    """COPY the histories day by day, one transaction a day, with the rollup triggers
    bypassed; counts the rows into ``report``."""
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
    conn.execute("SET intern.analytics_bulk = off")
    conn.execute("RESET session_replication_role")


def _rebuild_rollups(conn: psycopg.Connection, start: datetime, end: datetime, days: int) -> None:
    """Rebuild the rollups over [start, end) a week at a time, one transaction a week."""
    # A week of a plant's rows sorts and hashes in memory rather than in temp files.
    conn.execute("SET work_mem = '256MB'")
    for w in range(0, days, 7):
        a_dt = start + timedelta(days=w)
        b_dt = min(end, a_dt + timedelta(days=7))
        conn.execute("SELECT analytics_rebuild(%s, %s)", (a_dt, b_dt))
        conn.commit()


def _vacuum(conn: psycopg.Connection, report: GenerationReport) -> None:
    """VACUUM (ANALYZE) every table written (leaves ``conn`` in autocommit) and count the
    rollup rows into ``report``."""
    conn.autocommit = True
    for table in TABLES:
        conn.execute(f"VACUUM (ANALYZE) {table}")
        if table.startswith("rollup_"):
            report.rows[table] = _scalar(conn, f"SELECT count(*) FROM {table}")


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
    """COPY the jobs that end in [a, b) with their fasteners, the day's state events and
    alerts, and the parts first seen that day; rows written per table."""
    rows = dict.fromkeys(("jobs", "fastener_results", "cell_state_events", "alerts", "parts"), 0)
    sels = [np.flatnonzero((h.end >= a) & (h.end < b)) for h in hist]
    ids = _job_ids(conn, sum(len(s) for s in sels))
    new_parts: list[np.ndarray] = []
    blocks: dict[str, list[Block]] = {
        "jobs": [],
        "fastener_results": [],
        "cell_state_events": [],
        "alerts": [],
    }
    off = 0
    for h, sel in zip(hist, sels, strict=True):
        job_ids = ids[off : off + len(sel)]
        off += len(sel)
        if len(sel):
            new_parts.append(_first_seen(seen_parts, h.plan.line, h.part_no[sel]))
        blocks["jobs"].append(job_cols(h, sel, job_ids, recipe_ids[h.plan.id], plan))
        blocks["fastener_results"].append(fastener_cols(h, sel, job_ids, a, rng, opts.trace_sample))
        esel = np.flatnonzero((h.ev_at >= a) & (h.ev_at < b))
        blocks["cell_state_events"].append(event_cols(h, esel))
        asel = np.flatnonzero((h.al_raised >= a) & (h.al_raised < b))
        blocks["alerts"].append(alert_cols(h, asel, sel, job_ids))
    parts = np.concatenate(new_parts) if new_parts else np.zeros(0, dtype="S1")
    first_seen = np.full(len(parts), a, dtype=np.int64)
    rows["parts"] = _copy(
        conn, "parts", "part_id, first_seen", [Col("text", parts), Col("timestamptz", first_seen)]
    )
    for table, table_blocks in blocks.items():
        rows[table] = _copy(conn, table, table_blocks[0][0], _concat(table_blocks))
    return rows


def _job_ids(conn: psycopg.Connection, n: int) -> np.ndarray:
    """``n`` ids drawn from the jobs' id sequence, as the table's default would."""
    return np.array(
        [
            r[0]
            for r in conn.execute(
                "SELECT nextval(pg_get_serial_sequence('jobs', 'id')) FROM generate_series(1, %s)",
                (n,),
            ).fetchall()
        ],
        dtype=np.int64,
    )


def _first_seen(seen_parts: dict[str, np.ndarray], line: str, part_no: np.ndarray) -> np.ndarray:
    """Part ids among ``part_no`` the line has not seen before; marks them seen."""
    top = int(part_no.max()) + 1
    if len(seen_parts[line]) < top:
        seen_parts[line] = np.concatenate(
            [seen_parts[line], np.zeros(top - len(seen_parts[line]), dtype=bool)]
        )
    nos = np.unique(part_no)
    fresh = nos[~seen_parts[line][nos]]
    seen_parts[line][fresh] = True
    return part_ids(line, fresh)


def _concat(blocks: list[Block]) -> list[Col]:
    """The stations' blocks of one table as one set of columns."""
    return [
        Col(
            c.kind,
            np.concatenate([blk[1][i].values for blk in blocks]),
            None if c.null is None else np.concatenate([blk[1][i].null for blk in blocks]),
            None if c.lengths is None else np.concatenate([blk[1][i].lengths for blk in blocks]),
        )
        for i, c in enumerate(blocks[0][1])
    ]
