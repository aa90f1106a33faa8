"""Column blocks for one station's slice of a day: jobs, fasteners, state events, alerts.

Each function returns (COPY column list, columns); nullable columns always carry a NULL
mask so that blocks of several stations concatenate.
"""

from __future__ import annotations

import time
import zlib

import numpy as np

from cell.demo.history.pgcopy import Col
from cell.demo.history.plant import DAY_US, POLICIES, TECHNICIANS, US, PlantPlan
from cell.demo.history.simulate import REASONS, REWORK, StationHistory
from cell.packml import PackML
from robot.jobs import ErrorCode

Block = tuple[str, list[Col]]
TRACE_SAMPLES = 32


def _const(value: str, n: int) -> np.ndarray:
    return np.full(n, value.encode())


def _pick(table: tuple[str | None, ...], idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Text values by index into ``table`` and the NULL mask (``None`` entries)."""
    encoded = np.array([(v or "").encode() for v in table])
    null = np.array([v is None for v in table])
    return encoded[idx], null[idx]


def part_ids(line: str, part_no: np.ndarray) -> np.ndarray:
    if len(part_no) == 0:
        return np.zeros(0, dtype="S1")
    return np.char.add(f"{line}-".encode(), np.char.zfill(part_no.astype("S9"), 9))


def job_cols(
    h: StationHistory, sel: np.ndarray, ids: np.ndarray, recipe_id: int, plan: PlantPlan
) -> Block:
    n = len(sel)
    st = h.plan
    robots = np.where(h.spare[sel], plan.spare(st.line).encode(), st.home_robot.encode())
    policy = np.array([p[0].encode() for p in POLICIES])[h.policy[sel]]
    rework, rework_null = _pick(REWORK, h.rework[sel])
    no = np.zeros(n, dtype=bool)
    cols = [
        Col("int8", ids),
        Col("text", _const(st.id, n)),
        Col("int4", h.epoch[sel]),
        Col("int8", h.job_seq[sel]),
        Col("text", part_ids(st.line, h.part_no[sel])),
        Col("int4", np.ones(n, dtype=np.int32)),
        Col("int4", np.full(n, recipe_id)),
        Col("text", robots),
        Col("text", _const(st.task.value, n)),
        Col("text", policy),
        Col("timestamptz", h.start[sel]),
        Col("timestamptz", h.end[sel]),
        Col("int4", h.cycle_ms[sel]),
        Col("bool", h.ok[sel]),
        Col("int4", h.error_code[sel]),
        Col("int2", h.attempt[sel]),
        Col("text", rework, rework_null | no),
        Col("text", _const("", n)),
        Col("timestamptz", h.end[sel] + 50_000),
    ]
    return (
        "id, station_id, epoch, job_seq, part_id, program_no, recipe_id, robot_id, task, "
        "policy_version, started_at, ended_at, cycle_time_ms, ok, error_code, attempt, "
        "rework, detail, recorded_at",
        cols,
    )


def _failing(
    code: np.ndarray,
    tmin: np.ndarray,
    tmax: np.ndarray,
    amin: np.ndarray,
    amax: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Final torque and angle of a fastener that failed with ``code``."""
    m = len(code)
    u = rng.uniform(0.2, 1.0, m)
    torque = np.select(
        [
            code == ErrorCode.CROSS_THREAD,
            code == ErrorCode.MISSING_NUT,
            code == ErrorCode.STRIPPED,
            code == ErrorCode.UNDER_TORQUE,
            code == ErrorCode.OVER_TORQUE,
            code == ErrorCode.FASTEN_TIMEOUT,
        ],
        [
            tmax + 2 * u,
            0.4 + u,
            tmin * (0.5 + 0.2 * u),
            tmin - 1.5 * u,
            tmax + 1.2 * u,
            tmin * (0.7 + 0.2 * u),
        ],
        default=(tmin + tmax) / 2,
    )
    angle = np.select(
        [
            code == ErrorCode.CROSS_THREAD,
            code == ErrorCode.MISSING_NUT,
            code == ErrorCode.STRIPPED,
            code == ErrorCode.ANGLE_LOW,
            code == ErrorCode.ANGLE_HIGH,
            code == ErrorCode.FASTEN_TIMEOUT,
        ],
        [
            amin - 120 * u,
            amax + 150 * u,
            amax + 100 * u,
            amin - 80 * u,
            amax + 80 * u,
            amax * (1 + 0.05 * u),
        ],
        default=(amin + amax) / 2,
    )
    return torque, angle


def fastener_cols(
    h: StationHistory,
    sel: np.ndarray,
    ids: np.ndarray,
    day_us: int,
    rng: np.random.Generator,
    trace_sample: float,
) -> Block:
    """Every fastener of the selected jobs, in recipe order per job; a failed job fails at
    one of its positions. Failed fasteners and ``trace_sample`` of the others carry a
    trace."""
    specs = h.plan.fasteners
    n, f = len(sel), len(specs)
    side = (
        np.repeat([[s[0].encode() for s in specs]], n, axis=0).ravel()
        if f
        else np.zeros(0, dtype="S5")
    )
    pos = np.tile(np.array([s[1] for s in specs], dtype=np.int16), n)
    lim = np.tile(np.array([s[2:] for s in specs], dtype=np.float64).reshape(-1, 4), (n, 1))
    tmin, tmax, amin, amax = (lim[:, i] for i in range(4))
    torque, angle, fail, code = _measures(h, sel, lim, day_us, rng)
    traced = fail | (rng.random(n * f) < trace_sample)
    blob, lengths = _traces(torque, angle, traced)
    cols = [
        Col("int8", np.repeat(ids, f)),
        Col("text", side),
        Col("int2", pos),
        Col("float8", torque),
        Col("float8", angle),
        Col("float8", tmin),
        Col("float8", tmax),
        Col("float8", amin),
        Col("float8", amax),
        Col("bool", ~fail),
        Col("int4", np.where(fail, code, 0).astype(np.int32)),
        Col("bytea", blob, None, lengths),
    ]
    return (
        "job_id, side, position, torque_nm, angle_deg, torque_min_nm, torque_max_nm, "
        "angle_min_deg, angle_max_deg, ok, error_code, trace",
        cols,
    )


def _measures(
    h: StationHistory, sel: np.ndarray, lim: np.ndarray, day_us: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(torque, angle, failed, job error code) per fastener; ``lim`` holds the rows'
    (torque min, torque max, angle min, angle max)."""
    n, f = len(sel), len(h.plan.fasteners)
    tmin, tmax, amin, amax = (lim[:, i] for i in range(4))
    # Each position has its own centring; the tool wears over two weeks and is replaced.
    pos_rng = np.random.default_rng(zlib.crc32(h.plan.id.encode()))
    t_off = np.tile(pos_rng.uniform(-0.2, 0.2, f), n)
    a_off = np.tile(pos_rng.uniform(-0.15, 0.15, f), n)
    wear = (((day_us // DAY_US) % 14) / 14.0 - 0.5) * 0.3
    half_t, half_a = (tmax - tmin) / 2, (amax - amin) / 2
    torque = tmin + half_t * (1 + t_off + wear) + rng.normal(0, 1, n * f) * half_t / 4.3
    angle = amin + half_a * (1 + a_off) + rng.normal(0, 1, n * f) * half_a / 4.0
    torque = np.clip(torque, tmin + 0.01 * half_t, tmax - 0.01 * half_t)
    angle = np.clip(angle, amin + 0.01 * half_a, amax - 0.01 * half_a)
    code = np.repeat(h.error_code[sel], f)
    fail = np.zeros(n * f, dtype=bool)
    if f:
        which = (h.job_seq[sel] * 7) % f
        fail[np.arange(n) * f + which] = code[np.arange(n) * f + which] > 0
    if fail.any():
        torque[fail], angle[fail] = _failing(
            code[fail], tmin[fail], tmax[fail], amin[fail], amax[fail], rng
        )
    return torque, angle, fail, code


def _traces(
    torque: np.ndarray, angle: np.ndarray, traced: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(trace blob, byte length) per fastener: TRACE_SAMPLES little-endian float32
    (angle, torque) pairs rising to the final values where ``traced``, else empty."""
    x = np.linspace(0.0, 1.0, TRACE_SAMPLES)
    curves = np.empty((int(traced.sum()), TRACE_SAMPLES, 2), dtype="<f4")
    curves[:, :, 0] = angle[traced, None] * x
    curves[:, :, 1] = torque[traced, None] * x**3
    blob = np.zeros(len(traced), dtype=f"S{TRACE_SAMPLES * 8}")
    if len(curves):
        blob[traced] = np.frombuffer(curves.tobytes(), dtype=f"S{TRACE_SAMPLES * 8}")
    return blob, np.where(traced, TRACE_SAMPLES * 8, 0)


def event_cols(h: StationHistory, sel: np.ndarray) -> Block:
    n = len(sel)
    names = np.array([s.name.lower().encode() for s in PackML])
    reasons = np.array([r.encode() for r in REASONS])
    codes = h.ev_state[sel]
    cols = [
        Col("text", _const(h.plan.id, n)),
        Col("text", names[codes]),
        Col("int4", codes),
        Col("text", reasons[h.ev_reason[sel]]),
        Col("timestamptz", h.ev_at[sel]),
    ]
    return "station_id, state, state_code, reason, at", cols


def alert_cols(
    h: StationHistory, sel: np.ndarray, job_sel: np.ndarray, job_ids: np.ndarray
) -> Block:
    n = len(sel)
    st = h.plan
    job = h.al_job[sel]
    has_job = job >= 0
    where = np.searchsorted(job_sel, np.where(has_job, job, 0))
    where = np.clip(where, 0, max(len(job_sel) - 1, 0))
    ids = job_ids[where] if len(job_ids) else np.zeros(n, dtype=np.int64)
    safe = np.where(has_job, job, 0)
    parts = part_ids(st.line, h.part_no[safe]) if len(h.part_no) else _const("", n)
    now = int(time.time()) * US
    open_ = h.al_clear[sel] > now
    techs = np.array([t.encode() for t in TECHNICIANS])[h.al_tech[sel]]
    kind = np.where(
        has_job,
        b"nok",
        np.where(
            h.al_reason[sel] == REASONS.index("no robot assigned"), b"no_robot", b"robot_fault"
        ),
    )
    messages = []
    for i in range(n):
        if has_job[i]:
            code = int(h.al_code[sel][i])
            name = ErrorCode(code).name.lower() if code in ErrorCode._value2member_map_ else code
            messages.append(
                f"{st.id} job {h.job_seq[job[i]]} part {parts[i].decode()}: {name}".encode()
            )
        else:
            messages.append(f"{st.id}: {REASONS[h.al_reason[sel][i]]}".encode())
    rework_idx = np.where(has_job, h.rework[safe] if len(h.rework) else 0, 0)
    rework, rework_null = _pick(REWORK, rework_idx)
    reworked_at = h.al_clear[sel] - 30 * US
    cols = [
        Col("text", _const(st.id, n)),
        Col("int8", ids, ~has_job),
        Col("text", parts, ~has_job),
        Col("text", kind),
        Col("int4", h.al_code[sel]),
        Col("text", np.array(messages, dtype="S")),
        Col("timestamptz", h.al_raised[sel]),
        Col("timestamptz", h.al_ack[sel]),
        Col("text", techs),
        Col("timestamptz", h.al_clear[sel], open_),
        Col("text", techs, open_),
        Col("text", rework, rework_null | open_),
        Col("timestamptz", reworked_at, rework_null | open_),
        Col("text", techs, rework_null | open_),
    ]
    return (
        "station_id, job_id, part_id, kind, error_code, message, raised_at, "
        "acknowledged_at, acknowledged_by, cleared_at, cleared_by, rework, reworked_at, "
        "reworked_by",
        cols,
    )
