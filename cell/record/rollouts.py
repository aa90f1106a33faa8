"""Canary rollouts of a policy version on a station: start, stop, status, decide.

A rollout row says which candidate version runs beside which incumbent on a station and
with which share of the jobs; ``rollout_jobs`` says which arm each of its jobs ran on
(the station writes it with ``record_arm`` when it records the job, the arm chosen by
``rollout_rule.arm_for`` on the job's key). ``decide`` replays the rollout's jobs in the
order they ended through the pure rule (``cell.record.rollout_rule``), with the
incumbent's reference (its last jobs on the station before the rollout started), and
records its decision with author ``system`` and the evidence it rests on (the reference
used among it); a supervisor may stop a running rollout at any time.
At most one rollout runs per station (the database enforces it too).

People act through ``cell.record.acts.Acts`` (``start_rollout``, ``stop_rollout``), which
audits each act; ``start`` and ``stop`` here are its rules and raise ``Refused`` with a
reason a person can act on. Every function commits.

A promoted candidate becomes the station's version (``station_version``): the cell names
it in every job of the station from then on, until a later rollout promotes another.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cell.errors import InvalidInput, Refused
from cell.record import models as m
from cell.record.rollout_reference import Reference
from cell.record.rollout_rule import Arm, Decision, JobOutcome, RolloutRule, Verdict, evaluate

SYSTEM = "system"  # the author of the rule's decisions
RUNNING = "running"
STATES = {
    Decision.PROMOTE: "promoted",
    Decision.ROLL_BACK: "rolled_back",
    Decision.KEEP_INCUMBENT: "stopped",
}


class RolloutRefused(Refused):
    """The rollout act is not allowed now; the message says why."""


def _station(session: Session, station_id: str) -> m.Station:
    # Locked, so that two starts on one station are answered one after the other.
    station = session.get(m.Station, station_id, with_for_update=True)
    if station is None:
        known = ", ".join(session.scalars(select(m.Station.id).order_by(m.Station.id)))
        raise InvalidInput(f"unknown station {station_id!r}; known stations: {known or 'none'}")
    return station


def running(session: Session, station_id: str) -> m.Rollout | None:
    """The rollout running on ``station_id``, if any."""
    return session.scalars(
        select(m.Rollout).where(m.Rollout.station_id == station_id, m.Rollout.state == RUNNING)
    ).one_or_none()


def station_version(session: Session, station_id: str) -> str | None:
    """The version the station runs outside a rollout: the candidate of its latest
    promoted rollout, or None (what its robot's worker runs by default)."""
    return session.scalars(
        select(m.Rollout.candidate_version)
        .where(m.Rollout.station_id == station_id, m.Rollout.state == STATES[Decision.PROMOTE])
        .order_by(m.Rollout.decided_at.desc(), m.Rollout.id.desc())
        .limit(1)
    ).first()


def job_id(session: Session, station_id: str, epoch: int, job_seq: int) -> int | None:
    """The id of the recorded job with that key, if it is on record."""
    return session.scalars(
        select(m.Job.id).where(
            m.Job.station_id == station_id, m.Job.epoch == epoch, m.Job.job_seq == job_seq
        )
    ).first()


def current_version(session: Session, station_id: str) -> str | None:
    """The policy version of the station's latest recorded job (the incumbent)."""
    return session.scalars(
        select(m.Job.policy_version)
        .where(m.Job.station_id == station_id, m.Job.policy_version.is_not(None))
        .order_by(m.Job.ended_at.desc(), m.Job.id.desc())
        .limit(1)
    ).first()


def start(
    session: Session,
    station_id: str,
    candidate: str,
    *,
    author: str,
    share: float = 0.2,
    incumbent: str | None = None,
    at: datetime | None = None,
) -> m.Rollout:
    """Start running ``candidate`` beside the incumbent on ``station_id``. The incumbent is
    ``incumbent``, else the station's promoted version, else the version of its latest
    job. Refused when a rollout already runs there, the candidate is the incumbent, or no
    incumbent is known."""
    RolloutRule(share=share)  # the share's bounds, checked in one place
    if not author.strip():
        raise RolloutRefused("starting a rollout needs its author")
    if not candidate.strip():
        raise InvalidInput("the candidate version is empty")
    _station(session, station_id)
    busy = running(session, station_id)
    if busy is not None:
        raise RolloutRefused(
            f"{station_id} already runs rollout {busy.id} of {busy.candidate_version} "
            f"(started by {busy.started_by}); stop it first"
        )
    incumbent = (
        incumbent or station_version(session, station_id) or current_version(session, station_id)
    )
    if incumbent is None:
        raise RolloutRefused(
            f"no job with a policy version on record at {station_id}: give the incumbent version"
        )
    if candidate == incumbent:
        raise RolloutRefused(f"{candidate} already runs at {station_id}: nothing to compare")
    row = m.Rollout(
        station_id=station_id,
        incumbent_version=incumbent,
        candidate_version=candidate,
        share=share,
        started_at=at or datetime.now(UTC),
        started_by=author,
        state=RUNNING,
        reason="",
        evidence={},
    )
    session.add(row)
    try:
        session.commit()
    except IntegrityError:  # a start that raced past the lock's window on another path
        session.rollback()
        raise RolloutRefused(f"{station_id} already runs a rollout; stop it first") from None
    return row


def stop(
    session: Session, station_id: str, *, author: str, reason: str, at: datetime | None = None
) -> m.Rollout:
    """Stop the rollout running on ``station_id``: the incumbent stays."""
    if not author.strip():
        raise RolloutRefused("stopping a rollout needs its author")
    if not reason.strip():
        raise RolloutRefused("stopping a rollout needs a reason")
    _station(session, station_id)
    row = running(session, station_id)
    if row is None:
        raise RolloutRefused(f"no rollout runs at {station_id}")
    _end(row, "stopped", author, reason, at)
    session.commit()
    return row


def _end(row: m.Rollout, state: str, author: str, reason: str, at: datetime | None) -> None:
    row.state = state
    row.decided_at = at or datetime.now(UTC)
    row.decided_by = author
    row.reason = reason


def record_arm(session: Session, rollout_id: int, job_id: int, arm: Arm) -> None:
    """Record the arm job ``job_id`` ran on; a repeat is harmless (the first one stays)."""
    session.execute(
        insert(m.RolloutJob)
        .values(job_id=job_id, rollout_id=rollout_id, arm=arm.value)
        .on_conflict_do_nothing(index_elements=["job_id"])
    )
    session.commit()


# A job passed first time: OK on its first attempt (a retry's OK is not a first pass).
FIRST_PASS_OK = and_(m.Job.ok.is_(True), m.Job.attempt == 1)


def outcomes(session: Session, rollout_id: int) -> list[tuple[JobOutcome, datetime]]:
    """The rollout's jobs in the order they ended (arm, first pass, cycle time, takt),
    each with the time it ended."""
    rows = session.execute(
        select(
            m.RolloutJob.arm,
            FIRST_PASS_OK,
            m.Job.cycle_time_ms,
            m.Recipe.takt_s,
            m.Job.ended_at,
        )
        .join(m.Job, m.Job.id == m.RolloutJob.job_id)
        .outerjoin(m.Recipe, m.Recipe.id == m.Job.recipe_id)
        .where(m.RolloutJob.rollout_id == rollout_id)
        .order_by(m.Job.ended_at, m.Job.id)
    ).all()
    return [
        (JobOutcome(Arm(arm), bool(ok), cycle_ms / 1000.0, takt), ended)
        for arm, ok, cycle_ms, takt, ended in rows
    ]


def reference(session: Session, row: m.Rollout, jobs: int) -> Reference:
    """The incumbent's reference for rollout ``row``: its last ``jobs`` jobs on the
    station that ended before the rollout started (none of the rollout's own, should a
    clock put one there), and how many passed first time."""
    own = select(m.RolloutJob.job_id).where(
        m.RolloutJob.rollout_id == row.id, m.RolloutJob.job_id == m.Job.id
    )
    last = (
        select(FIRST_PASS_OK.label("ok"))
        .where(
            m.Job.station_id == row.station_id,
            m.Job.policy_version == row.incumbent_version,
            m.Job.ended_at < row.started_at,
            ~own.exists(),
        )
        .order_by(m.Job.ended_at.desc(), m.Job.id.desc())
        .limit(jobs)
        .subquery()
    )
    n, ok = session.execute(
        select(func.count(), func.count().filter(last.c.ok)).select_from(last)
    ).one()
    return Reference(jobs=n, ok=ok)


def decide(session: Session, rollout_id: int, *, rule: RolloutRule | None = None) -> Verdict | None:
    """Evaluate the rule on the rollout's recorded jobs, job by job, with the incumbent's
    reference (``reference``), and record the evidence; a decision ends the rollout with
    author ``system``, dated when the job it was decided on ended, so asking again later
    records the same decision. None for a rollout that is no longer running (its ending
    stands)."""
    row = session.get(m.Rollout, rollout_id, with_for_update=True)
    if row is None:
        raise InvalidInput(f"no rollout {rollout_id}")
    if row.state != RUNNING:
        session.rollback()
        return None
    rule = rule or RolloutRule(share=row.share)
    jobs = outcomes(session, rollout_id)
    verdict = evaluate((job for job, _ in jobs), rule, reference(session, row, rule.reference_jobs))
    row.evidence = verdict.evidence.as_json()
    if verdict.decision is not Decision.CONTINUE:
        read = sum(verdict.evidence.jobs.values())
        _end(row, STATES[verdict.decision], SYSTEM, verdict.reason, jobs[read - 1][1])
    session.commit()
    return verdict


@dataclass(frozen=True)
class RolloutStatus:
    """One rollout as the status command shows it."""

    rollout_id: int
    station_id: str
    incumbent_version: str
    candidate_version: str
    share: float
    state: str
    started_at: datetime
    started_by: str
    decided_at: datetime | None
    decided_by: str | None
    reason: str
    candidate_jobs: int
    incumbent_jobs: int
    candidate_fpy: float | None
    incumbent_fpy: float | None
    # The incumbent's record before the rollout that the rule compared against.
    reference_jobs: int = 0
    reference_fpy: float | None = None
    # Always-valid interval for the failure-rate ratio candidate/incumbent (None: unbounded).
    ratio_interval: tuple[float | None, float | None] = (None, None)


def status(session: Session, station_id: str | None = None) -> list[RolloutStatus]:
    """With a station: its rollouts, latest first. Without: each station's latest."""
    query = select(m.Rollout)
    if station_id is not None:
        query = query.where(m.Rollout.station_id == station_id)
    else:
        latest = (
            select(m.Rollout.station_id, func.max(m.Rollout.id).label("id"))
            .group_by(m.Rollout.station_id)
            .subquery()
        )
        query = query.join(latest, latest.c.id == m.Rollout.id)
    rows = session.scalars(query.order_by(m.Rollout.started_at.desc(), m.Rollout.id.desc()))
    return [_status(r) for r in rows]


def _status(r: m.Rollout) -> RolloutStatus:
    ev = r.evidence or {}
    jobs = ev.get("jobs") if isinstance(ev.get("jobs"), dict) else {}
    yields = ev.get("yields") if isinstance(ev.get("yields"), dict) else {}
    assert isinstance(jobs, dict) and isinstance(yields, dict)
    reference = ev.get("reference") if isinstance(ev.get("reference"), dict) else {}
    assert isinstance(reference, dict)
    interval = ev.get("ratio_interval")
    low, high = interval if isinstance(interval, list) and len(interval) == 2 else (None, None)
    return RolloutStatus(
        rollout_id=r.id,
        station_id=r.station_id,
        incumbent_version=r.incumbent_version,
        candidate_version=r.candidate_version,
        share=r.share,
        state=r.state,
        started_at=r.started_at,
        started_by=r.started_by,
        decided_at=r.decided_at,
        decided_by=r.decided_by,
        reason=r.reason,
        candidate_jobs=int(jobs.get(Arm.CANDIDATE.value, 0)),
        incumbent_jobs=int(jobs.get(Arm.INCUMBENT.value, 0)),
        candidate_fpy=yields.get(Arm.CANDIDATE.value),
        incumbent_fpy=yields.get(Arm.INCUMBENT.value),
        reference_jobs=int(reference.get("jobs", 0)),
        reference_fpy=reference.get("yield"),
        ratio_interval=(low, high),
    )
