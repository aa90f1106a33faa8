"""The record of every job's episode (table ``episodes``) and the rule that prunes them.

A row is written with its job (``cell.record.jobs.record_job``); the files live in the
robots' episode store (``robot.job_episodes``), at the row's ``path`` relative to it.

Retention (``prune_plan``, a pure function): every NOK episode is kept; an OK one is kept
when its job key's hash falls in the share ``keep_ok`` (deterministic: the same key is
kept or dropped whoever runs the rule, and a smaller share drops a subset of what a
larger one kept); then, within a byte budget, the oldest kept OK episodes go first until
the kept ones fit. NOK episodes are never dropped, even over budget: the plan says so.
Pruned rows stay, with ``pruned_at`` set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cell.record import models as m


@dataclass(frozen=True)
class EpisodeFilter:
    """Which episodes: a station, NOK only, a task, a policy version, jobs ended in
    ``[since, until)``; pruned ones too only with ``pruned``."""

    station: str | None = None
    nok_only: bool = False
    task: str | None = None
    policy_version: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    pruned: bool = False


@dataclass(frozen=True)
class EpisodeRow:
    """One episode with its job, as the commands show and use it."""

    id: int
    job_id: int
    job_key: str
    attempt: int
    station_id: str
    part_id: str | None
    task: str | None
    ok: bool
    error_code: int
    policy_version: str | None
    frames: int
    bytes: int
    rework: str | None
    ended_at: datetime
    created_at: datetime
    path: str
    pruned_at: datetime | None


def find_episodes(session: Session, f: EpisodeFilter) -> list[EpisodeRow]:
    """The episodes ``f`` selects, oldest job first."""
    q = (
        select(m.Episode, m.Job)
        .join(m.Job, m.Job.id == m.Episode.job_id)
        .order_by(m.Job.ended_at, m.Job.id)
    )
    if f.station is not None:
        q = q.where(m.Job.station_id == f.station)
    if f.nok_only:
        q = q.where(m.Episode.ok.is_(False))
    if f.task is not None:
        q = q.where(m.Job.task == f.task)
    if f.policy_version is not None:
        q = q.where(m.Episode.policy_version == f.policy_version)
    if f.since is not None:
        q = q.where(m.Job.ended_at >= f.since)
    if f.until is not None:
        q = q.where(m.Job.ended_at < f.until)
    if not f.pruned:
        q = q.where(m.Episode.pruned_at.is_(None))
    return [_row(ep, job) for ep, job in session.execute(q)]


def _row(ep: m.Episode, job: m.Job) -> EpisodeRow:
    return EpisodeRow(
        id=ep.id,
        job_id=job.id,
        job_key=f"{job.station_id}:{job.epoch}:{job.job_seq}",
        attempt=ep.attempt,
        station_id=job.station_id,
        part_id=job.part_id,
        task=job.task,
        ok=ep.ok,
        error_code=job.error_code,
        policy_version=ep.policy_version,
        frames=ep.frames,
        bytes=ep.bytes,
        rework=job.rework,
        ended_at=job.ended_at,
        created_at=ep.created_at,
        path=ep.path,
        pruned_at=ep.pruned_at,
    )


def kept_share(job_key: str, share: float) -> bool:
    """Whether an OK episode of ``job_key`` is in the kept ``share`` (0..1): the first 8
    bytes of the key's SHA-256 as a fraction of 2**64, below ``share``."""
    digest = hashlib.sha256(job_key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


@dataclass(frozen=True)
class PrunePlan:
    """What the rule drops (ids, oldest first) and keeps; ``over_budget`` is what the
    kept episodes still exceed the budget by (NOK ones only, never dropped), in bytes."""

    drop: tuple[int, ...]
    kept: int
    kept_bytes: int
    dropped_bytes: int
    over_budget: int


def prune_plan(
    rows: Sequence[EpisodeRow], keep_ok: float, budget_bytes: int | None = None
) -> PrunePlan:
    """Apply the retention rule (module docstring) to unpruned ``rows``."""
    if not 0.0 <= keep_ok <= 1.0:
        raise ValueError(f"keep_ok must be between 0 and 1, not {keep_ok}")
    by_age = sorted(rows, key=lambda r: (r.ended_at, r.id))
    keep = [r for r in by_age if not r.ok or kept_share(r.job_key, keep_ok)]
    kept_ids = {r.id for r in keep}
    drop = [r for r in by_age if r.id not in kept_ids]
    total = sum(r.bytes for r in keep)
    if budget_bytes is not None:
        for r in [r for r in keep if r.ok]:  # oldest OK first
            if total <= budget_bytes:
                break
            drop.append(r)
            total -= r.bytes
    dropped = {r.id for r in drop}
    ordered = [r for r in by_age if r.id in dropped]
    over = max(0, total - budget_bytes) if budget_bytes is not None else 0
    return PrunePlan(
        drop=tuple(r.id for r in ordered),
        kept=len(rows) - len(ordered),
        kept_bytes=total,
        dropped_bytes=sum(r.bytes for r in ordered),
        over_budget=over,
    )


def mark_pruned(session: Session, ids: Sequence[int], at: datetime) -> None:
    """Record that the files of episodes ``ids`` were deleted at ``at``; the caller commits."""
    if ids:
        session.execute(
            update(m.Episode)
            .where(m.Episode.id.in_(list(ids)), m.Episode.pruned_at.is_(None))
            .values(pruned_at=at)
        )
