"""The plant's reference rows written before its history (stations, robots, recipes,
shifts, robot assignments) and what the plant decides per station: planned stops, robot
swaps, PLC restarts and policy roll-outs."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import psycopg

from cell.demo.history.plant import (
    DAY_US,
    TAKT_S,
    US,
    PlantPlan,
    StationPlan,
    planned_stops,
    shift_rows,
)
from cell.demo.history.simulate import StationInputs
from cell.record.jobs import recipe_hash


def seed_plant(
    conn: psycopg.Connection, plan: PlantPlan, start: datetime, end: datetime
) -> dict[str, int]:
    """Stations, robots, one recipe per station and the shifts of [start, end), each
    kept if already there; the recipe id per station."""
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
        spec = _recipe_spec(st)
        digest = recipe_hash(spec)
        conn.execute(
            "INSERT INTO recipes (station_id, program_no, name, task, takt_s, spec, "
            "content_hash, created_at) VALUES (%s, 1, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            (st.id, st.task.value, st.task.value, TAKT_S, json.dumps(spec), digest, start),
        )
        row = conn.execute(
            "SELECT id FROM recipes WHERE station_id = %s AND program_no = 1 AND content_hash = %s",
            (st.id, digest),
        ).fetchone()
        if row is None:  # inserted just above, or there before with the same content
            raise RuntimeError(f"recipe of {st.id} not found after insert")
        recipe_ids[st.id] = row[0]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO shifts (name, starts_at, ends_at) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            shift_rows(start, end),
        )
    return recipe_ids


def _recipe_spec(st: StationPlan) -> dict[str, object]:
    """The recipe as the cell stores it: program 1, the station's task, takt and limits."""
    return {
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


def station_inputs(
    plan: PlantPlan, start_us: int, end_us: int, seed: int
) -> dict[str, StationInputs]:
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


def write_assignments(
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
