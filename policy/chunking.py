"""Chunk scheduling: which action runs at each control tick, given chunks that arrive late.

``ChunkScheduler`` is the clock-free core shared by the real-time executor
(``policy.executor``) and the simulated-time runner (``policy.simtime``). Ticks are
integers; a chunk is indexed by the observation step it was computed from (row ``i``
is the action for tick ``obs_step + i``).

Asynchronous execution with a committed prefix (mode ``prefix``): when a new chunk is
requested at tick ``k`` the scheduler estimates the delay ``d = ceil(latency / dt)``
from recent latencies and passes the current chunk's actions for ticks ``k .. k+d-1``
as the prefix; the new chunk takes over at the tick it arrives, at row ``tick - k``.
A request goes out once the running actions are ``replan_age`` ticks older than their
observation (the next inference starts while ``horizon - replan_age`` rows are left), or,
once ``d`` reaches ``continuous_from_ticks``, as soon as the running chunk has arrived.
How long chunks should run is a property of the policy: a checkpoint may carry its own
(``policy.exec_config.ExecConfig.for_policy``).
Where the new chunk's own rows begin (after the prefix), the step from the last executed
action is spread over ``join_ticks`` ticks (``join_correction``): the model's first
row reacts to what the old plan could not see, and the join turns that reaction from one
jump into a few small steps, while the arm still ends where the new chunk puts it.
Baselines: ``naive`` (no prefix, switch at the arrival row), ``blend`` (no prefix,
cross-fade old and new over ``blend_ticks``) and ``sync`` (hold the pose while
inferring, then run the chunk from row 0).

Real-time chunking (mode ``rtc``, Black et al., arXiv 2506.07339): no prefix tokens;
the request carries a ``Guidance``: the current plan from tick ``k`` on, of which the
first ``d`` rows (those that run while inferring) are frozen and the rest guide the new
chunk under a soft, decaying mask. It is sampled by ``policy_chunk``.

The delay estimate ``d`` is a high quantile (``latency_quantile``) of the last
``latency_window`` latencies, so one spike or a slow first call cannot inflate it.

Every executed action passes a velocity limit (``robot.schema.clip_action``) and an
acceleration limit (change per tick), so a boundary can never jump harder than the arm
may. The watchdog: an action computed from an observation older than
``staleness_ticks`` is never executed; with no fresh action the arm holds its pose.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from policy.exec_config import ExecConfig, ExecMode, ExecStats
from robot.chunk_policy import ChunkPolicy
from robot.schema import (
    ACTION_DIM,
    ARM_ACTION,
    MAX_STEP_M,
    MAX_YAW_STEP,
    Observation,
    clip_action,
)

_N = len(ARM_ACTION)
TOOL_DIMS = np.array([_N - 1, 2 * _N - 1])
MOTION_DIMS = np.array([i for i in range(ACTION_DIM) if i not in TOOL_DIMS])
#: Per-dimension limit per tick; motion is measured against it (tool dims count as 1).
ACTION_SCALE = np.array(
    [MAX_STEP_M, MAX_STEP_M, MAX_STEP_M, MAX_YAW_STEP, 1.0] * 2, dtype=np.float32
)


@dataclass(frozen=True)
class Guidance:
    """What a real-time-chunking request inpaints: ``target`` is the current plan for the
    ticks from the request on; its first ``frozen`` rows will run while inferring."""

    target: np.ndarray
    frozen: int
    scale: float = 1.0


def policy_chunk(
    policy: ChunkPolicy, obs: Observation, prefix: np.ndarray | None, guidance: Guidance | None
) -> np.ndarray:
    """The chunk for a request: guided (real-time chunking) when there is guidance and the
    policy can inpaint, otherwise ``policy.infer(obs, prefix)``."""
    guided = getattr(policy, "infer_guided", None)
    if guidance is not None and guided is not None:
        return np.asarray(
            guided(obs, guidance.target, guidance.frozen, max_guidance=guidance.scale)
        )
    return policy.infer(obs, prefix)


def delay_estimate(latencies: list[float] | deque[float], quantile: float, default: float) -> float:
    """Latency to plan for: the ``quantile`` of ``latencies`` (an observed value, never an
    interpolation), ``default`` when there are none. Any value above the quantile (a
    spike, a slow first call) is ignored once the window holds enough others."""
    if not latencies:
        return default
    return float(np.quantile(np.asarray(latencies), quantile, method="inverted_cdf"))


def join_correction(jump: np.ndarray, ticks: int) -> np.ndarray:
    """Rows (``ticks``, ACTION_DIM) to add to the actions that follow a chunk boundary
    whose ``jump`` is the last executed action minus the new chunk's first.

    The correction starts at the whole jump (the action just executed), falls in even
    steps past zero and climbs back to zero in even steps (``join_shape``), so no step on
    the way is larger than about ``2.4 / (ticks + 1)`` of the jump. Every dimension's rows
    sum to zero: actions are motions per tick, so after the last row the arm has moved
    exactly as the chunk planned (before the velocity and acceleration limits). Tool
    dimensions are never touched.
    """
    rows = np.zeros((max(ticks, 0), ACTION_DIM), dtype=np.float32)
    if ticks > 0:
        rows[:, MOTION_DIMS] = join_shape(ticks)[:, None] * jump[MOTION_DIMS]
    return rows


@functools.lru_cache(maxsize=8)
def join_shape(n: int) -> np.ndarray:
    """``n`` values that sum to zero on the way from 1 (before the first) to 0 (after the
    last): even steps down past zero, then even steps back up, the turn placed where the
    largest step is smallest (about ``2.4 / (n + 1)``). Computed once per ``n`` (read-only):
    every chunk boundary of a run asks for the same one."""

    def v(p: int) -> np.ndarray:
        # Down ``s`` a step for ``p`` steps, then up to 0 over the ``n - p + 1`` after:
        # the values sum to zero for ``s = (n + p) / (p (n + 1))``.
        down = 1.0 - (n + p) / (p * (n + 1)) * np.arange(1, p + 1)
        return np.concatenate([down, down[-1] * (1.0 - np.arange(1, n - p + 1) / (n - p + 1))])

    def largest_step(c: np.ndarray) -> float:
        return float(np.abs(np.diff(np.concatenate([[1.0], c, [0.0]]))).max())

    best = min((v(p) for p in range(1, n + 1)), key=largest_step)
    best.setflags(write=False)
    return best


def _superpose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise sum of two correction queues of different lengths."""
    out = np.zeros((max(len(a), len(b)), ACTION_DIM), dtype=np.float32)
    out[: len(a)] += a
    out[: len(b)] += b
    return out


def motion_norm(a: np.ndarray) -> float:
    """Size of an action change, motion dims only, each relative to its per-tick limit."""
    return float(np.linalg.norm((a / ACTION_SCALE)[MOTION_DIMS]))


class ChunkScheduler:
    """Picks the action of every tick from the chunks delivered so far (see module doc).

    Protocol per tick ``k``: ``deliver`` any chunk that has arrived, then, if
    ``want_request(k)``, send the observation with ``begin_request(k)``'s prefix to the
    policy, then ``next_action(k)`` is the action to send.
    """

    def __init__(self, config: ExecConfig, horizon: int = 30) -> None:
        self.config = config
        self.horizon = horizon
        self.stats = ExecStats()
        sync = config.mode is ExecMode.SYNC
        self._due_after = config.replan_every if sync else config.settled_replan_age()
        self._join_ticks = config.settled_join_ticks() if config.mode is ExecMode.PREFIX else 0
        self._chunk: np.ndarray | None = None
        self._base = 0  # tick at which row 0 of the current chunk applies
        self._obs_step = 0  # observation step the current chunk was computed from
        self._switch_tick = 0
        self._old: tuple[np.ndarray, int] | None = None  # (chunk, base) for blending
        self._in_flight: tuple[int, np.ndarray] | None = None  # (obs step, committed rows)
        self.guidance: Guidance | None = None  # of the in-flight request (mode rtc)
        self._latencies: deque[float] = deque(maxlen=config.latency_window)
        self._delay = self._estimate_delay()  # changes only when a latency arrives
        self._last = np.zeros(ACTION_DIM, dtype=np.float32)
        self._last_raw: np.ndarray | None = None
        self._last_source: int | None = None
        self._join_row: int | None = None  # row of the current chunk where the join falls
        self._joining = np.zeros((0, ACTION_DIM), dtype=np.float32)  # rows still to add
        self._sent_chunks = 0
        self._started = False

    @property
    def in_flight(self) -> bool:
        return self._in_flight is not None

    @property
    def last_action(self) -> np.ndarray:
        return self._last.copy()

    def delay_ticks(self) -> int:
        """Estimated delay in ticks (``delay_estimate`` of recent latencies), at least one."""
        return self._delay

    def _estimate_delay(self) -> int:
        c = self.config
        lat = delay_estimate(self._latencies, c.latency_quantile, c.initial_latency_s)
        return max(1, math.ceil(lat / c.dt - 1e-9))

    def want_request(self, tick: int) -> bool:
        """True when a new chunk is due and none is in flight (a due tick while one is in
        flight counts as a dropped observation, except in continuous inference).

        Due: synchronously, after ``replan_every`` rows of the running chunk; otherwise
        once the running actions are ``replan_after()`` ticks older than their
        observation, so with a steady delay ``d`` every chunk runs that many ticks (the
        actions executed are ``d`` to ``replan_after() + d - 1`` ticks old)."""
        if self.config.mode is ExecMode.SYNC:
            since, after = self._base, self._due_after
        else:
            since, after = self._obs_step, self.replan_after()
        due = self._chunk is None or tick - since >= after
        if due and self._in_flight is not None:
            # Continuous inference (``after`` under the replan age) waits on the request in
            # flight by design: no observation is lost to it.
            if self._chunk is not None and after >= self._due_after:
                self.stats.dropped_observations += 1
            return False
        return due

    def replan_after(self) -> int:
        """Asynchronously, how old the running actions get before the next request: the
        replan age, or the delay estimate when that is shorter and has reached
        ``continuous_from_ticks`` (the next request then goes out as each chunk arrives)."""
        cont, d = self.config.continuous_from_ticks, self._delay
        return min(d, self._due_after) if cont and d >= cont else self._due_after

    def begin_request(self, tick: int) -> np.ndarray | None:
        """Mark a request for the observation of ``tick``; returns the prefix to send (and
        sets ``guidance`` in mode ``rtc``)."""
        prefix = np.zeros((0, ACTION_DIM), dtype=np.float32)
        self.guidance = None
        mode = self.config.mode
        if mode in (ExecMode.PREFIX, ExecMode.RTC) and self._chunk is not None:
            d = self.delay_ticks()
            if mode is ExecMode.PREFIX:
                prefix = self._plan_from(tick, min(d, self.config.max_prefix))
            else:
                plan = self._plan_from(tick, min(self.horizon, d + self.config.guide_rows))
                prefix = plan[:d]
                if len(plan):
                    self.guidance = Guidance(plan, len(prefix), self.config.guidance_scale)
        self._in_flight = (tick, prefix)
        self.stats.requests += 1
        return prefix if mode is ExecMode.PREFIX else None

    def _plan_from(self, tick: int, n: int) -> np.ndarray:
        """The contiguous run of planned actions for ticks ``tick .. tick+n-1`` (only a
        contiguous run is usable as a prefix or a target)."""
        run = []
        for t in range(tick, tick + n):
            r = self._planned(t)
            if r is None:
                break
            run.append(r)
        if not run:
            return np.zeros((0, ACTION_DIM), dtype=np.float32)
        return np.stack(run).astype(np.float32)

    def deliver(self, chunk: np.ndarray, tick: int, latency_s: float) -> bool:
        """Hand over the chunk of the in-flight request, arriving at ``tick``.

        Returns False (and counts a dropped chunk) when it arrived too late to be used.
        """
        if self._in_flight is None:
            raise RuntimeError("deliver() without a request in flight")
        obs_step, prefix = self._in_flight
        self._in_flight = None
        self.guidance = None
        self._latencies.append(latency_s)
        self._delay = self._estimate_delay()
        self.stats.latencies_s.append(latency_s)
        chunk = np.array(chunk, dtype=np.float32).reshape(-1, ACTION_DIM)
        if len(prefix):
            chunk[: len(prefix)] = prefix  # committed actions are never rewritten
        # The first chunk of a segment runs from row 0: the arm stood still while it was
        # computed, so its first rows are still the right ones (as in synchronous mode).
        held = self.config.mode is ExecMode.SYNC or self._chunk is None
        base = tick if held else obs_step
        if tick - base >= len(chunk) or tick - obs_step > self.config.staleness_ticks:
            self.stats.dropped_chunks += 1
            return False
        if self.config.mode is ExecMode.BLEND and self._chunk is not None:
            self._old = (self._chunk, self._base)
        self._chunk, self._base, self._obs_step = chunk, base, obs_step
        self._switch_tick = tick
        self._join_row = len(prefix) if self._join_ticks and not held else None
        self._sent_chunks += 1
        self._started = True
        self.stats.chunks_used += 1
        return True

    def restart(self) -> None:
        """Start a new segment: a scripted phase moved the arms, so neither the current chunk
        nor the one in flight applies any more. The arm is at rest; the next chunk is
        requested without a prefix, and ticks until it arrives count as start-up."""
        self._chunk = None
        self._old = None
        self._in_flight = None
        self.guidance = None
        self._last = np.zeros(ACTION_DIM, dtype=np.float32)
        self._last_raw = self._last_source = None
        self._join_row = None
        self._joining = self._joining[:0]
        self._started = False

    def abandon_request(self) -> None:
        """Forget the in-flight request (its result will never be delivered)."""
        self._in_flight = None
        self.guidance = None

    def next_action(self, tick: int) -> np.ndarray:
        """The action for ``tick``, after watchdog, blending and limits."""
        self.stats.ticks += 1
        raw = self._planned(tick)
        waiting_sync = self.config.mode is ExecMode.SYNC and self._in_flight is not None
        if raw is not None and not waiting_sync:
            raw = self._joined(tick, self._blended(tick, raw))
            age = tick - self._obs_step
            self.stats.action_ages.append(age)
            source = self._sent_chunks
            if self._last_raw is not None:
                jump = motion_norm(raw - self._last_raw)
                if source != self._last_source:
                    self.stats.boundary_jumps.append(jump)
                else:
                    self.stats.within_steps.append(jump)
            self._last_raw, self._last_source = raw, source
            target = raw
        else:
            if not self._started:
                self.stats.startup_ticks += 1
            elif waiting_sync:
                self.stats.sync_wait_ticks += 1
            else:
                self.stats.empty_queue_ticks += 1
            target = self.hold_action()
            self._last_raw, self._last_source = None, None
            self._joining = self._joining[:0]  # the arm stops; nothing is left to make up
        self._last = self._limit(target)
        return self._last.copy()

    def hold_action(self) -> np.ndarray:
        """Hold the pose: no motion; the tool keeps its last command (or stops)."""
        hold = np.zeros(ACTION_DIM, dtype=np.float32)
        if self.config.hold_tool == "keep":
            hold[TOOL_DIMS] = self._last[TOOL_DIMS]
        return hold

    def _planned(self, tick: int) -> np.ndarray | None:
        if self._chunk is None:
            return None
        i = tick - self._base
        if not 0 <= i < len(self._chunk) or tick - self._obs_step > self.config.staleness_ticks:
            return None
        return self._chunk[i]

    def _joined(self, tick: int, raw: np.ndarray) -> np.ndarray:
        """``raw`` plus the join corrections due now. The first time a row of the current
        chunk at or past its prefix runs (the new chunk's own actions begin), the jump from
        the last executed action is queued as a ``join_correction`` over those pending."""
        pending = self._joining
        if self._join_row is not None and tick - self._base >= self._join_row:
            self._join_row = None
            if self._last_raw is not None:
                now = raw + (pending[0] if len(pending) else 0.0)
                new = join_correction(self._last_raw - now, self._join_ticks)
                pending = _superpose(pending, new)
        if not len(pending):
            return raw
        self._joining = pending[1:]
        return (raw + pending[0]).astype(np.float32)

    def _blended(self, tick: int, raw: np.ndarray) -> np.ndarray:
        if self._old is None:
            return raw
        k = tick - self._switch_tick
        old, base = self._old
        i = tick - base
        if k >= self.config.blend_ticks or not 0 <= i < len(old):
            self._old = None
            return raw
        w = (k + 1) / (self.config.blend_ticks + 1)
        return ((1 - w) * old[i] + w * raw).astype(np.float32)

    def _limit(self, target: np.ndarray) -> np.ndarray:
        a = clip_action(target)
        step = self.config.accel_limit * ACTION_SCALE[MOTION_DIMS]
        delta = np.clip(a[MOTION_DIMS] - self._last[MOTION_DIMS], -step, step)
        a[MOTION_DIMS] = self._last[MOTION_DIMS] + delta
        return a
