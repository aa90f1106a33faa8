"""What a fault run means: the robot's log, the PLC's latches and the record, compared.

Pure functions over plain values, so that they can be checked on hand-made inputs
(``tests/cell/line/test_kill_analysis.py``) before they are trusted to say a real run
was clean. ``tests.cell.line.kills`` gathers the inputs from a real line.

The inputs:

* ``WorkerEvent``: a robot worker's "job started" / "job ended" JSON log line. Its
  ``job_key`` is ``STATION:EPOCH:JOBSEQ``, with ``:2`` appended for a retry; ``at`` is
  ``time.time()`` on the worker. "job ended" is logged before the cell can see the
  result, so a worker time after the PLC's latch means the robot was still on a job the
  PLC had already closed.
* ``Latch``: a result the PLC latched, with the wall time the PLC saw ``ResultSeq``
  reach the job.
* ``RowView``: a row of the record's ``jobs`` table, with its fastener count.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

# The counts that must be zero on a line that survives its orchestrator's death.
ZERO_COUNTS = ("lost", "duplicates", "executed_twice", "robot_after_plc_done", "false_nok")
# A failover slower than this leaves the PLC waiting too long: the bench fails on it.
TAKEOVER_P99_LIMIT_S = 10.0
# The keys of one scenario in the bench's JSON line, in order.
JSON_KEYS = ("scenario", "kills", "jobs", *ZERO_COUNTS, "takeover_p50_s", "takeover_p99_s")
# A task whose OK job must leave its fasteners on record.
FASTENING_TASKS = frozenset({"nut_install", "screwing"})


@dataclass(frozen=True)
class JobKey:
    """A robot job's key split up: the PLC job (station, epoch, JobSeq) and the attempt."""

    station: str
    epoch: int
    job_seq: int
    attempt: int = 1

    @classmethod
    def parse(cls, key: str) -> JobKey | None:
        """``STATION:EPOCH:JOBSEQ[:ATTEMPT]``; None for anything else."""
        parts = key.split(":")
        if len(parts) not in (3, 4) or not all(p.isdigit() for p in parts[1:]):
            return None
        attempt = int(parts[3]) if len(parts) == 4 else 1
        return cls(parts[0], int(parts[1]), int(parts[2]), attempt)

    @property
    def job(self) -> tuple[str, int, int]:
        return (self.station, self.epoch, self.job_seq)

    def text(self) -> str:
        base = f"{self.station}:{self.epoch}:{self.job_seq}"
        return base if self.attempt == 1 else f"{base}:{self.attempt}"


@dataclass(frozen=True)
class WorkerEvent:
    kind: str  # "started" or "ended"
    key: JobKey
    at: float  # time.time() on the worker
    outcome: str | None = None  # "ok"/"nok" on "ended"
    robot: str = ""


@dataclass(frozen=True)
class Latch:
    station: str
    job_seq: int
    part_id: str
    ok: bool
    at: float | None  # wall time the PLC saw ResultSeq == JobSeq; None if not seen


@dataclass(frozen=True)
class RowView:
    station: str
    epoch: int
    job_seq: int
    part_id: str | None
    ok: bool
    error_code: int
    attempt: int
    policy_version: str | None
    task: str | None
    fasteners: int

    @property
    def key(self) -> JobKey:
        return JobKey(self.station, self.epoch, self.job_seq, self.attempt)


@dataclass(frozen=True)
class KillReport:
    """One scenario's counts. The five in ``ZERO_COUNTS`` must be zero; ``not_robot_result``
    (latched jobs whose row is not what a robot reported: no worker "job ended" with that
    outcome, no policy version, or an OK fastening job without fasteners) must be too.
    ``problems`` says which job made each count, for a failure message."""

    scenario: str
    kills: int
    jobs: int
    lost: int
    duplicates: int
    executed_twice: int
    robot_after_plc_done: int
    false_nok: int
    takeover_p50_s: float | None
    takeover_p99_s: float | None
    not_robot_result: int = 0
    problems: tuple[str, ...] = field(default=(), compare=False)

    def as_json(self) -> dict[str, object]:
        """The bench's JSON object: exactly ``JSON_KEYS``."""
        data = asdict(self)
        return {k: data[k] for k in JSON_KEYS}

    def failures(self) -> list[str]:
        """Why this scenario fails; empty when it passes."""
        out = [f"{name} = {getattr(self, name)}" for name in ZERO_COUNTS if getattr(self, name)]
        if self.not_robot_result:
            out.append(f"not_robot_result = {self.not_robot_result}")
        if self.takeover_p99_s is not None and self.takeover_p99_s > TAKEOVER_P99_LIMIT_S:
            out.append(f"takeover p99 {self.takeover_p99_s:.1f} s > {TAKEOVER_P99_LIMIT_S:g} s")
        return out


def read_worker_log(path: Path) -> list[WorkerEvent]:
    """The "job started" / "job ended" lines of one worker's JSON log; other lines (a
    traceback a killed process left, Celery's banner) are skipped."""
    events: list[WorkerEvent] = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            event = worker_event(obj)
            if event is not None:
                events.append(event)
    return events


def worker_event(obj: Mapping[str, object]) -> WorkerEvent | None:
    """One parsed JSON log object as a ``WorkerEvent``, None if it is not one."""
    message = str(obj.get("message", ""))
    kind = (
        "started"
        if message.startswith("job started")
        else "ended"
        if message.startswith("job ended")
        else None
    )
    key = JobKey.parse(str(obj.get("job_key", "")))
    at = obj.get("at")
    if kind is None or key is None or not isinstance(at, int | float):
        return None
    outcome = obj.get("outcome")
    return WorkerEvent(
        kind, key, float(at), str(outcome) if outcome is not None else None, str(obj.get("robot"))
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def takeover_delays(
    kills: Sequence[float], writes: Sequence[tuple[float, str]], stations: Iterable[str], end: float
) -> list[float]:
    """For each kill and station, seconds from the kill to the station's first PLC write
    after it (all times on one clock). A station never written again counts as ``end``
    minus the kill: a lower bound, never an optimistic guess."""
    by_station: dict[str, list[float]] = defaultdict(list)
    for t, sid in writes:
        by_station[sid].append(t)
    delays = []
    for t_kill in kills:
        for sid in stations:
            after = [t for t in by_station[sid] if t > t_kill]
            delays.append((min(after) if after else end) - t_kill)
    return delays


def analyse(
    scenario: str,
    kills: int,
    latches: Sequence[Latch],
    rows: Sequence[RowView],
    events: Sequence[WorkerEvent],
    takeovers: Sequence[float] | None = None,
) -> KillReport:
    """Compare what the PLC latched, what the record holds and what the robots did."""
    problems: list[str] = []
    lost = _lost(latches, rows, problems)
    duplicates = _duplicates(rows, problems)
    started = Counter(e.key for e in events if e.kind == "started")
    twice = sorted((k.text(), n) for k, n in started.items() if n > 1)
    problems += [f"executed twice: {k} ({n} starts)" for k, n in twice]
    late = _robot_after_plc_done(latches, rows, events, problems)
    false_nok, not_robot = _robot_results(latches, rows, events, problems)
    return KillReport(
        scenario=scenario,
        kills=kills,
        jobs=len(latches),
        lost=lost,
        duplicates=duplicates,
        executed_twice=len(twice),
        robot_after_plc_done=late,
        false_nok=false_nok,
        takeover_p50_s=percentile(takeovers, 0.5) if takeovers is not None else None,
        takeover_p99_s=percentile(takeovers, 0.99) if takeovers is not None else None,
        not_robot_result=not_robot,
        problems=tuple(problems),
    )


def _lost(latches: Sequence[Latch], rows: Sequence[RowView], problems: list[str]) -> int:
    have = {(r.station, r.job_seq, r.part_id) for r in rows}
    lost = [x for x in latches if (x.station, x.job_seq, x.part_id) not in have]
    problems += [f"lost: {x.station} JobSeq {x.job_seq} part {x.part_id}" for x in lost]
    return len(lost)


def _duplicates(rows: Sequence[RowView], problems: list[str]) -> int:
    """Rows beyond the first for one job key, plus rows beyond the first for one part at
    one station (the simulated PLC brings each part to each station once)."""
    by_key = Counter((r.station, r.epoch, r.job_seq) for r in rows)
    by_part = Counter((r.station, r.part_id) for r in rows if r.part_id)
    extra = 0
    for (sid, epoch, seq), n in sorted(by_key.items()):
        if n > 1:
            extra += n - 1
            problems.append(f"duplicate: {sid}:{epoch}:{seq} has {n} rows")
    for (sid, part), n in sorted(by_part.items()):
        if n > 1:
            extra += n - 1
            problems.append(f"duplicate: part {part} recorded {n} times at {sid}")
    return extra


def _latch_times(
    latches: Sequence[Latch], rows: Sequence[RowView]
) -> dict[tuple[str, int, int], float]:
    """Latch wall time by job (station, epoch, JobSeq): the epoch is the row's for the
    latched part; a latch with no row keeps the epochs the robots used for that JobSeq
    (see ``_robot_after_plc_done``) under epoch -1."""
    epochs: dict[tuple[str, int, str | None], set[int]] = defaultdict(set)
    for r in rows:
        epochs[(r.station, r.job_seq, r.part_id)].add(r.epoch)
    out: dict[tuple[str, int, int], float] = {}
    for x in latches:
        if x.at is None:
            continue
        for epoch in epochs.get((x.station, x.job_seq, x.part_id)) or {-1}:
            out[(x.station, epoch, x.job_seq)] = x.at
    return out


def _robot_after_plc_done(
    latches: Sequence[Latch],
    rows: Sequence[RowView],
    events: Sequence[WorkerEvent],
    problems: list[str],
) -> int:
    """Jobs a robot started or ended after the PLC latched their result."""
    latched = _latch_times(latches, rows)
    late: set[tuple[str, int, int]] = set()
    for e in events:
        job = e.key.job
        t = latched.get(job, latched.get((job[0], -1, job[2])))
        if t is not None and e.at > t and job not in late:
            late.add(job)
            problems.append(
                f"robot after PLC done: {e.key.text()} {e.kind} {e.at - t:.3f} s after the latch"
            )
    return len(late)


def _robot_results(
    latches: Sequence[Latch],
    rows: Sequence[RowView],
    events: Sequence[WorkerEvent],
    problems: list[str],
) -> tuple[int, int]:
    """(false NOK rows, latched jobs whose row is not the robot's real result)."""
    ended: dict[JobKey, set[str]] = defaultdict(set)
    for e in events:
        if e.kind == "ended" and e.outcome is not None:
            ended[e.key].add(e.outcome)
    false_nok = 0
    for r in rows:
        if not r.ok and "ok" in ended.get(r.key, set()):
            false_nok += 1
            problems.append(f"false NOK: {r.key.text()} error {r.error_code}, robot ended ok")
    by_part = {(r.station, r.job_seq, r.part_id): r for r in rows}
    not_robot = 0
    for x in latches:
        row = by_part.get((x.station, x.job_seq, x.part_id))
        if row is None:
            continue  # counted as lost
        why = _not_robot_result(row, ended.get(row.key, set()))
        if why:
            not_robot += 1
            problems.append(f"not the robot's result: {row.key.text()}: {why}")
    return false_nok, not_robot


def _not_robot_result(row: RowView, outcomes: set[str]) -> str:
    """Why ``row`` is not what its robot reported; empty when it is."""
    want = "ok" if row.ok else "nok"
    if want not in outcomes:
        return f"no worker 'job ended' with outcome {want} (saw {sorted(outcomes) or 'none'})"
    if not row.policy_version:
        return "no policy version on record"
    if row.ok and row.task in FASTENING_TASKS and row.fasteners == 0:
        return "OK fastening job without fasteners on record"
    return ""
