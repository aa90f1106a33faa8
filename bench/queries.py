"""Headline analytics queries on a generated plant history: median latency of each query
(rollups + raw edges) and its ratio against the same answer from a plain GROUP BY over the
raw rows, measured in the same run.

    python bench/queries.py --database-url postgresql://... [--runs 5]
    python bench/queries.py --generate --stations 20 --days 365 --server-url postgresql://.../postgres

With --generate a fresh database is created on the server, migrated and filled with
``intern history generate``'s generator; its generation time and size are printed too.
The window is ragged (not on hour or day boundaries) so that raw edges take part.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from cell import insight as an
from cell.demo.history import HistoryOptions, generate_history
from cell.record.migrate import upgrade

RAW_YIELD = """
SELECT station_id, (ended_at AT TIME ZONE 'UTC')::date, count(*),
       count(*) FILTER (WHERE ok AND attempt = 1),
       count(*) FILTER (WHERE ok OR rework = 'reworked_ok')
FROM jobs WHERE ended_at >= :a AND ended_at < :b GROUP BY 1, 2"""
RAW_PARETO = """
SELECT error_code, count(*) FROM jobs WHERE NOT ok AND ended_at >= :a AND ended_at < :b
GROUP BY 1 ORDER BY 2 DESC"""
RAW_SPC = """
SELECT f.side, f.position, f.ok, count(*), avg(f.torque_nm), stddev_samp(f.torque_nm)
FROM jobs j JOIN fastener_results f ON f.job_id = j.id
WHERE j.station_id = :st AND j.ended_at >= :a AND j.ended_at < :b GROUP BY 1, 2, 3"""
RAW_CYCLE = """
SELECT station_id, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY cycle_time_ms),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY cycle_time_ms),
       count(*) FILTER (WHERE cycle_time_ms >= 76000)
FROM jobs WHERE cycle_time_ms > 0 AND ended_at >= :a AND ended_at < :b GROUP BY 1"""
RAW_OEE = """
WITH sh AS (SELECT id, starts_at, ends_at FROM shifts
            WHERE starts_at >= :a AND starts_at < :b AND starts_at < now()),
ev AS (SELECT station_id, state, at,
              coalesce(lead(at) OVER (PARTITION BY station_id ORDER BY at, id), now()) AS nx
       FROM cell_state_events
       WHERE at >= (SELECT min(starts_at) FROM sh) - interval '1 day'
         AND at < (SELECT max(ends_at) FROM sh)),
st AS (SELECT sh.id, ev.station_id,
              sum(extract(epoch FROM least(ev.nx, sh.ends_at) - greatest(ev.at, sh.starts_at)))
                AS known,
              sum(extract(epoch FROM least(ev.nx, sh.ends_at) - greatest(ev.at, sh.starts_at)))
                FILTER (WHERE NOT analytics_state_down(ev.state)) AS running
       FROM sh JOIN ev ON ev.at < sh.ends_at AND ev.nx > sh.starts_at GROUP BY 1, 2),
jb AS (SELECT sh.id, j.station_id, count(*) AS parts,
              count(*) FILTER (WHERE j.ok AND j.attempt = 1) AS fp
       FROM sh JOIN jobs j ON j.ended_at >= sh.starts_at AND j.ended_at < sh.ends_at
       GROUP BY 1, 2)
SELECT st.id, st.station_id, st.known, st.running, jb.parts, jb.fp
FROM st LEFT JOIN jb USING (id, station_id)"""


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    fn()  # warm the cache and the plan
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def counts(s: Session) -> dict[str, int]:
    out = {}
    for table in (
        "jobs",
        "fastener_results",
        "cell_state_events",
        "alerts",
        "shifts",
        "rollup_jobs_hourly",
        "rollup_fasteners_daily",
        "rollup_state_hourly",
    ):
        # Planner estimates after VACUUM ANALYZE: exact enough and instant on 30 M rows.
        est = s.execute(
            text("SELECT reltuples FROM pg_class WHERE relname = :t"), {"t": table}
        ).scalar()
        out[table] = (
            int(est)
            if est is not None and est >= 0
            else int(s.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0)
        )
    return out


def run(url: str, runs: int, raw_runs: int, work_mem: str) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with Session(engine) as s:
        # Both sides get the same memory for sorts and hashes, so the raw GROUP BY is not
        # slowed by temp files that a tuned server would not write.
        s.execute(text(f"SET work_mem = '{work_mem}'"))
        lo, hi = s.execute(text("SELECT min(ended_at), max(ended_at) FROM jobs")).one()
        if lo is None:
            raise SystemExit("no jobs in this database: generate a history first (--generate)")
        rows = counts(s)
        print("rows: " + ", ".join(f"{k} {v:,}" for k, v in rows.items()))
        full = an.Window(lo + timedelta(hours=3, minutes=17), hi - timedelta(hours=2, minutes=5))
        month = an.Window(full.end - timedelta(days=30), full.end)
        station = s.execute(
            text("SELECT station_id FROM jobs WHERE ended_at >= :a LIMIT 1"), {"a": full.start}
        ).scalar()
        print(
            f"window {full.start:%Y-%m-%d %H:%M} .. {full.end:%Y-%m-%d %H:%M} "
            f"({(full.end - full.start).days} days); OEE over the last 30 days; SPC at {station}"
        )
        print(f"{'query':26} {'rollup ms':>10} {'raw GROUP BY ms':>16} {'ratio':>8}  same answer")
        for name, fast, slow, same in cases(s, full, month, station):
            t_fast, q = timed(fast, runs)
            t_slow, r = timed(slow, raw_runs)
            print(
                f"{name:26} {1000 * t_fast:10.1f} {1000 * t_slow:16.1f} "
                f"{t_slow / t_fast:7.1f}x  {'yes' if same(q, r) else 'NO'}"
            )
    engine.dispose()


Case = tuple[str, Callable[[], Any], Callable[[], Any], Callable[[Any, Any], bool]]


def cases(s: Session, full: an.Window, month: an.Window, station: str | None) -> list[Case]:
    """(name, the insight query, the raw GROUP BY, do their answers agree) per figure;
    OEE over ``month``, the others over ``full``, SPC at ``station``."""
    p = {"a": full.start, "b": full.end}
    return [
        (
            "yield by station/day",
            lambda: an.yield_by(s, full, ("station", "day")),
            lambda: s.execute(text(RAW_YIELD), p).all(),
            lambda q, r: sum(x.parts for x in q) == sum(x[2] for x in r),
        ),
        (
            "NOK Pareto by code",
            lambda: an.nok_pareto(s, full),
            lambda: s.execute(text(RAW_PARETO), p).all(),
            lambda q, r: {x.error_code: x.count for x in q} == dict(r),
        ),
        (
            "OEE per station-shift",
            lambda: an.oee_by_shift(s, month),
            lambda: s.execute(text(RAW_OEE), {"a": month.start, "b": month.end}).all(),
            lambda q, r: sum(x.parts for x in q) == sum(x[4] or 0 for x in r),
        ),
        (
            "SPC per position",
            lambda: an.spc_summary(s, full, station=station),
            lambda: s.execute(text(RAW_SPC), p | {"st": station}).all(),
            lambda q, r: sum(x.all.n for x in q) == sum(x[3] for x in r),
        ),
        (
            "cycle-time distribution",
            lambda: an.cycle_distribution(s, full),
            lambda: s.execute(text(RAW_CYCLE), p).all(),
            lambda q, r: sum(x.jobs for x in q) == sum(x[1] for x in r),
        ),
    ]


def generate(server_url: str, stations: int, days: int) -> str:
    admin = create_engine(
        server_url.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT",
    )
    name = f"intern_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = (
        make_url(server_url.replace("postgresql://", "postgresql+psycopg://", 1))
        .set(database=name)
        .render_as_string(hide_password=False)
    )
    upgrade(url)
    t = time.perf_counter()
    rep = generate_history(
        url,
        HistoryOptions(stations=stations, days=days),
        progress=lambda m: print(f"  {time.perf_counter() - t:7.1f} s  {m}", flush=True),
    )
    print(
        f"generated {stations} stations x {days} days into {name} in "
        f"{rep.seconds['total']:.0f} s ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in rep.seconds.items() if k != "total")
        + f"); {rep.bytes_on_disk / 2**30:.2f} GiB on disk"
    )
    return url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", help="a database holding a generated history")
    ap.add_argument("--generate", action="store_true", help="generate into a new database")
    ap.add_argument(
        "--server-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="server (maintenance database) for --generate",
    )
    ap.add_argument("--stations", type=int, default=20)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--runs", type=int, default=5, help="timed runs per rollup query")
    ap.add_argument("--raw-runs", type=int, default=3, help="timed runs per raw GROUP BY")
    ap.add_argument("--work-mem", default="256MB", help="work_mem for both sides")
    args = ap.parse_args()
    if not args.generate and not args.database_url:
        ap.error("give --database-url, or --generate to make a history first")
    url = (
        generate(args.server_url, args.stations, args.days) if args.generate else args.database_url
    )
    if not re.fullmatch(r"\d+(kB|MB|GB)", args.work_mem):
        ap.error("--work-mem looks like 256MB")
    run(url, args.runs, args.raw_runs, args.work_mem)


if __name__ == "__main__":
    main()
