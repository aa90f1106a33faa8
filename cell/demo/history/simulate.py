"""One station's history as arrays: jobs, state events and alerts, time-ordered.

Random draws are made per PLC offer up front (vectorised); a short loop then walks the
offers in time, because downtime, holds and retries each shift what comes after them.
Times are int64 microseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cell.demo.history.plant import (
    CYCLE_S,
    ERROR_WEIGHTS,
    HOUR_US,
    NOK_RATE,
    POLICIES,
    TAKT_US,
    TECHNICIANS,
    US,
    StationPlan,
)
from cell.packml import PackML

TRANSFER_US = 4 * US  # part out, next part in
FAULT_REASONS = (
    "robot fault: gripper slip",
    "vision: part not located",
    "safety: light curtain interrupted",
    "tool: nutrunner fault",
)
REASONS = (
    "ready",
    "job",
    "nok hold: awaiting technician",
    "planned maintenance",
    "no robot assigned",
    *FAULT_REASONS,
)
REWORK = (None, "reworked_ok", "scrapped")


@dataclass
class StationInputs:
    """What the plant decides for a station: window, stops, robot swaps, policies."""

    start_us: int
    end_us: int
    planned: list[tuple[int, int]]
    swaps: list[tuple[int, int]]  # the line's spare serves the station in [a, b)
    policy_from_us: list[int]  # when each of POLICIES reaches this station
    restarts_us: list[int]  # PLC cold restarts: the counter epoch advances


@dataclass
class StationHistory:
    plan: StationPlan
    # jobs
    offer: np.ndarray
    start: np.ndarray
    end: np.ndarray
    cycle_ms: np.ndarray
    ok: np.ndarray
    error_code: np.ndarray
    attempt: np.ndarray
    part_no: np.ndarray
    spare: np.ndarray  # served by the line's spare robot
    policy: np.ndarray  # index into POLICIES
    epoch: np.ndarray
    job_seq: np.ndarray
    rework: np.ndarray  # index into REWORK
    # events
    ev_at: np.ndarray
    ev_state: np.ndarray  # PackML code
    ev_reason: np.ndarray  # index into REASONS
    # alerts: job index or -1, raised, acknowledged, cleared, kind, error code, technician
    al_job: np.ndarray
    al_raised: np.ndarray
    al_ack: np.ndarray
    al_clear: np.ndarray
    al_reason: np.ndarray  # index into REASONS (faults) or -1 (NOK)
    al_code: np.ndarray
    al_tech: np.ndarray


def _bursts(rng: np.random.Generator, a: int, b: int) -> list[tuple[int, int, int]]:
    """NOK bursts (a bad batch of nuts, a worn bit): about two a month, 1-6 h, one mode."""
    n = rng.poisson(2.0 * (b - a) / (30 * 24 * HOUR_US))
    out = []
    for t in np.sort(rng.integers(a, b, n)):
        out.append((int(t), int(t + rng.uniform(1, 6) * HOUR_US), int(rng.integers(0, 3))))
    return out


def simulate_station(plan: StationPlan, inp: StationInputs, seed: int) -> StationHistory:
    rng = np.random.default_rng(seed)
    task = plan.task
    offers = np.arange(inp.start_us + plan.index * 2 * US, inp.end_us, TAKT_US, dtype=np.int64)
    n = len(offers)
    policy = np.searchsorted(np.asarray(inp.policy_from_us), offers, side="right") - 1
    policy = np.clip(policy, 0, len(POLICIES) - 1)
    nok_factor = np.array([p[1] for p in POLICIES])[policy]
    ct_shift = np.array([p[2] for p in POLICIES])[policy]
    codes = np.array([int(c) for c, _ in ERROR_WEIGHTS[task]])
    weights = np.array([w for _, w in ERROR_WEIGHTS[task]])
    p_nok = NOK_RATE[task] * nok_factor
    burst_code = np.full(n, -1)
    for a, b, mode in _bursts(rng, inp.start_us, inp.end_us):
        sel = (offers >= a) & (offers < b)
        p_nok = np.where(sel, p_nok * 6, p_nok)
        burst_code[sel] = codes[mode]
    code1 = rng.choice(codes, n, p=weights)
    code1 = np.where((burst_code >= 0) & (rng.random(n) < 0.7), burst_code, code1)
    nok1 = rng.random(n) < p_nok
    nok2 = rng.random(n) < 0.3  # a retry after a NOK fails again this often
    code2 = rng.choice(codes, n, p=weights)
    mean_s, sd_s = CYCLE_S[task]
    cyc1 = (
        mean_s
        + ct_shift
        + rng.normal(0, sd_s, n)
        + rng.exponential(1.2, n)
        + np.where(nok1, 6.0, 0.0)
    ) * US
    cyc2 = (mean_s + ct_shift + rng.normal(0, sd_s, n) + rng.exponential(1.2, n)) * US
    ack = rng.lognormal(np.log(90), 0.6, n) * US
    repair = rng.lognormal(np.log(240), 0.7, n) * US
    scrap = rng.random(n) < 0.15
    tech = rng.integers(0, len(TECHNICIANS), n)

    days = (inp.end_us - inp.start_us) / (24 * HOUR_US)
    nf = rng.poisson(2.5 * days)
    f_at = np.sort(rng.integers(inp.start_us, inp.end_us, nf))
    f_dur = np.where(
        rng.random(nf) < 0.02,
        rng.uniform(1, 4, nf) * HOUR_US,
        rng.lognormal(np.log(240), 0.8, nf) * US,
    ).astype(np.int64)
    f_reason = rng.integers(0, len(FAULT_REASONS), nf) + REASONS.index(FAULT_REASONS[0])
    # A swap to the spare robot starts with a short stop while no robot serves the station.
    for a, _b in inp.swaps:
        f_at = np.append(f_at, a)
        f_dur = np.append(f_dur, int(rng.uniform(8, 15) * 60 * US))
        f_reason = np.append(f_reason, REASONS.index("no robot assigned"))
    order = np.argsort(f_at, kind="stable")
    f_at, f_dur, f_reason = f_at[order], f_dur[order], f_reason[order]

    jobs: list[tuple[int, int, int, int, int, int, int]] = []  # k, start, end, ms, ok, code, att
    rework: list[int] = []
    ev: list[tuple[int, int, int]] = []
    al: list[tuple[int, int, int, int, int, int, int]] = []
    planned = inp.planned
    pi = fi = k = 0
    free_at = inp.start_us
    idle, execute, held, stopped = (
        int(PackML.IDLE),
        int(PackML.EXECUTE),
        int(PackML.HELD),
        int(PackML.STOPPED),
    )
    ev.append((inp.start_us, idle, 0))
    while k < n:
        now = max(int(offers[k]), free_at)
        if now >= inp.end_us:
            break
        if pi < len(planned) and now + 100 * US > planned[pi][0]:
            s = max(planned[pi][0], free_at)
            ev.append((s, stopped, 3))
            free_at = max(planned[pi][1], s + US)
            ev.append((free_at, idle, 0))
            pi += 1
        elif fi < len(f_at) and f_at[fi] <= now:
            s = max(int(f_at[fi]), free_at)
            ev.append((s, held, int(f_reason[fi])))
            al.append(
                (-1, s, s + int(ack[k]), s + int(f_dur[fi]), int(f_reason[fi]), 0, int(tech[k]))
            )
            free_at = s + int(f_dur[fi])
            ev.append((free_at, idle, 0))
            fi += 1
            while fi < len(f_at) and f_at[fi] < free_at:
                fi += 1
        else:
            # A retry after a NOK happens inside the same PLC job: one row, attempt 2,
            # the cycle time covers both tries and the outcome is the retry's.
            retry = bool(nok1[k]) and plan.on_nok == "retry_once"
            work = int(cyc1[k]) + (2 * US + int(cyc2[k]) if retry else 0)
            ok = not (nok2[k] if retry else nok1[k])
            code = 0 if ok else int(code2[k] if retry else code1[k])
            end = now + work
            ev.append((now, execute, 1))
            ev.append((end, idle, 0))
            final = len(jobs)
            jobs.append((k, now, end, work // 1000, int(ok), code, 2 if retry else 1))
            rework.append(0)
            free_at = end + TRANSFER_US
            if jobs[final][4] == 0:
                raised = end
                acked = raised + int(ack[k])
                cleared = acked + int(repair[k])
                rework[final] = 2 if scrap[k] else 1
                al.append((final, raised, acked, cleared, -1, jobs[final][5], int(tech[k])))
                if plan.on_nok == "hold":
                    ev.append((end + 1000, held, 2))
                    ev.append((cleared, idle, 0))
                    free_at = cleared
        # The line waits for a stopped station: at most one part queues, the rest pass later.
        k = max(k + 1, int(np.ceil((free_at - TAKT_US - offers[0]) / TAKT_US)))

    j = np.array(jobs, dtype=np.int64).reshape(-1, 7)
    restarts = np.asarray(inp.restarts_us, dtype=np.int64)
    epoch = np.searchsorted(restarts, j[:, 1], side="right")
    seq = np.ones(len(j), dtype=np.int64)
    if len(j):
        first = np.r_[0, np.flatnonzero(np.diff(epoch)) + 1]
        idx = np.arange(len(j))
        seq = idx - np.repeat(first, np.diff(np.r_[first, len(j)])) + 1
    spare = np.zeros(len(j), dtype=bool)
    for a, b in inp.swaps:
        spare |= (j[:, 1] >= a) & (j[:, 1] < b)
    e = np.array(ev, dtype=np.int64).reshape(-1, 3)
    e = e[np.argsort(e[:, 0], kind="stable")]
    e = e[e[:, 0] < inp.end_us]
    a = np.array(al, dtype=np.int64).reshape(-1, 7)
    return StationHistory(
        plan=plan,
        offer=offers[j[:, 0]],
        start=j[:, 1],
        end=j[:, 2],
        cycle_ms=j[:, 3].astype(np.int32),
        ok=j[:, 4].astype(bool),
        error_code=j[:, 5].astype(np.int32),
        attempt=j[:, 6].astype(np.int16),
        part_no=j[:, 0] - plan.index + 8,
        spare=spare,
        policy=policy[j[:, 0]],
        epoch=epoch.astype(np.int32),
        job_seq=seq,
        rework=np.array(rework, dtype=np.int8),
        ev_at=e[:, 0],
        ev_state=e[:, 1].astype(np.int32),
        ev_reason=e[:, 2],
        al_job=a[:, 0],
        al_raised=a[:, 1],
        al_ack=a[:, 2],
        al_clear=a[:, 3],
        al_reason=a[:, 4],
        al_code=a[:, 5].astype(np.int32),
        al_tech=a[:, 6],
    )
