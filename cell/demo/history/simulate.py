"""One station's history as arrays: jobs, state events and alerts, time-ordered.

Random draws are made per PLC offer up front (vectorised); a short loop then walks the
offers in time, because downtime, holds and retries each shift what comes after them.
Times are int64 microseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    """The station's jobs, state events and alerts over ``inp``'s window; the same
    ``seed`` gives the same history."""
    rng = np.random.default_rng(seed)
    offers = np.arange(inp.start_us + plan.index * 2 * US, inp.end_us, TAKT_US, dtype=np.int64)
    draws = _draw_offers(rng, plan, inp, offers)
    faults = _draw_faults(rng, inp)
    walk = _walk(plan, inp, offers, draws, faults)
    return _history(plan, inp, offers, draws.policy, walk)


@dataclass(frozen=True)
class _Draws:
    """Random draws per PLC offer, made up front whether or not the offer becomes a job."""

    policy: np.ndarray  # index into POLICIES
    code1: np.ndarray  # the first try's error code if it fails
    nok1: np.ndarray
    nok2: np.ndarray  # the retry fails too
    code2: np.ndarray
    cyc1: np.ndarray  # microseconds
    cyc2: np.ndarray
    ack: np.ndarray  # microseconds from an alert to its acknowledgement
    repair: np.ndarray  # microseconds from acknowledgement to clearing
    scrap: np.ndarray
    tech: np.ndarray  # index into TECHNICIANS


def _draw_offers(
    rng: np.random.Generator, plan: StationPlan, inp: StationInputs, offers: np.ndarray
) -> _Draws:
    """Outcome, cycle time and alert handling per offer, under the policy of its time and
    the NOK bursts."""
    task = plan.task
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
    return _Draws(policy, code1, nok1, nok2, code2, cyc1, cyc2, ack, repair, scrap, tech)


def _draw_faults(
    rng: np.random.Generator, inp: StationInputs
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unplanned stops in time order: (at, duration, index into REASONS)."""
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
    return f_at[order], f_dur[order], f_reason[order]


_IDLE, _EXECUTE, _HELD, _STOPPED = (
    int(PackML.IDLE),
    int(PackML.EXECUTE),
    int(PackML.HELD),
    int(PackML.STOPPED),
)


@dataclass
class _Walk:
    """What the walk through the offers has recorded, and when the station is next free."""

    free_at: int
    # (offer index, start, end, cycle ms, ok, error code, attempt)
    jobs: list[tuple[int, int, int, int, int, int, int]] = field(default_factory=list)
    rework: list[int] = field(default_factory=list)  # index into REWORK, per job
    ev: list[tuple[int, int, int]] = field(default_factory=list)  # (at, PackML, reason)
    # (job index or -1, raised, acknowledged, cleared, reason or -1, error code, technician)
    al: list[tuple[int, int, int, int, int, int, int]] = field(default_factory=list)


def _walk(
    plan: StationPlan,
    inp: StationInputs,
    offers: np.ndarray,
    draws: _Draws,
    faults: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> _Walk:
    """Walk the offers in time: a planned stop or a fault that is due comes first, else
    the offer runs as a job; each pushes back when the station is free."""
    f_at, f_dur, f_reason = faults
    n = len(offers)
    planned = inp.planned
    pi = fi = k = 0
    w = _Walk(free_at=inp.start_us)
    w.ev.append((inp.start_us, _IDLE, 0))
    while k < n:
        now = max(int(offers[k]), w.free_at)
        if now >= inp.end_us:
            break
        if pi < len(planned) and now + 100 * US > planned[pi][0]:
            s = max(planned[pi][0], w.free_at)
            w.ev.append((s, _STOPPED, 3))
            w.free_at = max(planned[pi][1], s + US)
            w.ev.append((w.free_at, _IDLE, 0))
            pi += 1
        elif fi < len(f_at) and f_at[fi] <= now:
            s = max(int(f_at[fi]), w.free_at)
            reason, dur = int(f_reason[fi]), int(f_dur[fi])
            w.ev.append((s, _HELD, reason))
            w.al.append((-1, s, s + int(draws.ack[k]), s + dur, reason, 0, int(draws.tech[k])))
            w.free_at = s + dur
            w.ev.append((w.free_at, _IDLE, 0))
            fi += 1
            while fi < len(f_at) and f_at[fi] < w.free_at:
                fi += 1
        else:
            _run_job(w, plan, k, now, draws)
        # The line waits for a stopped station: at most one part queues, the rest pass later.
        k = max(k + 1, int(np.ceil((w.free_at - TAKT_US - offers[0]) / TAKT_US)))
    return w


def _run_job(w: _Walk, plan: StationPlan, k: int, now: int, draws: _Draws) -> None:
    """Offer ``k`` runs as a job from ``now``; a NOK raises an alert and, where the
    station holds on NOK, holds it until the alert is cleared."""
    # A retry after a NOK happens inside the same PLC job: one row, attempt 2,
    # the cycle time covers both tries and the outcome is the retry's.
    retry = bool(draws.nok1[k]) and plan.on_nok == "retry_once"
    work = int(draws.cyc1[k]) + (2 * US + int(draws.cyc2[k]) if retry else 0)
    ok = not (draws.nok2[k] if retry else draws.nok1[k])
    code = 0 if ok else int(draws.code2[k] if retry else draws.code1[k])
    end = now + work
    w.ev.append((now, _EXECUTE, 1))
    w.ev.append((end, _IDLE, 0))
    final = len(w.jobs)
    w.jobs.append((k, now, end, work // 1000, int(ok), code, 2 if retry else 1))
    w.rework.append(0)
    w.free_at = end + TRANSFER_US
    if w.jobs[final][4] == 0:
        raised = end
        acked = raised + int(draws.ack[k])
        cleared = acked + int(draws.repair[k])
        w.rework[final] = 2 if draws.scrap[k] else 1
        w.al.append((final, raised, acked, cleared, -1, w.jobs[final][5], int(draws.tech[k])))
        if plan.on_nok == "hold":
            w.ev.append((end + 1000, _HELD, 2))
            w.ev.append((cleared, _IDLE, 0))
            w.free_at = cleared


def _job_seq(epoch: np.ndarray) -> np.ndarray:
    """JobSeq per job: 1, 2, ... counting again from 1 in each counter epoch."""
    seq = np.ones(len(epoch), dtype=np.int64)
    if len(epoch):
        first = np.r_[0, np.flatnonzero(np.diff(epoch)) + 1]
        idx = np.arange(len(epoch))
        seq = idx - np.repeat(first, np.diff(np.r_[first, len(epoch)])) + 1
    return seq


def _history(
    plan: StationPlan, inp: StationInputs, offers: np.ndarray, policy: np.ndarray, w: _Walk
) -> StationHistory:
    """The walk's records as time-ordered arrays; events past the window are dropped."""
    j = np.array(w.jobs, dtype=np.int64).reshape(-1, 7)
    restarts = np.asarray(inp.restarts_us, dtype=np.int64)
    epoch = np.searchsorted(restarts, j[:, 1], side="right")
    spare = np.zeros(len(j), dtype=bool)
    for a, b in inp.swaps:
        spare |= (j[:, 1] >= a) & (j[:, 1] < b)
    e = np.array(w.ev, dtype=np.int64).reshape(-1, 3)
    e = e[np.argsort(e[:, 0], kind="stable")]
    e = e[e[:, 0] < inp.end_us]
    al = np.array(w.al, dtype=np.int64).reshape(-1, 7)
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
        job_seq=_job_seq(epoch),
        rework=np.array(w.rework, dtype=np.int8),
        ev_at=e[:, 0],
        ev_state=e[:, 1].astype(np.int32),
        ev_reason=e[:, 2],
        al_job=al[:, 0],
        al_raised=al[:, 1],
        al_ack=al[:, 2],
        al_clear=al[:, 3],
        al_reason=al[:, 4],
        al_code=al[:, 5].astype(np.int32),
        al_tech=al[:, 6],
    )
