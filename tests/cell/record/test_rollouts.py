"""Rollouts on the record (real PostgreSQL): start and stop as audited acts, the rule's
decision on recorded jobs with author ``system``, and the status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cell.config import load_line_config, sample_config_path
from cell.errors import InvalidInput
from cell.record import models as m
from cell.record import rollouts as ro
from cell.record.acts import Actor, Acts
from cell.record.jobs import JobRecord, record_job
from cell.record.rollout_rule import Arm, RolloutRule
from cell.record.roster import sync_line

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
SUPERVISOR = Actor("sup-anna", "cli")


@pytest.fixture
def line_db(db_session: Session) -> Session:
    recipes = sync_line(db_session, load_line_config(sample_config_path()))
    db_session.info["recipe"] = recipes[("ST10", 1)]
    return db_session


def job_record(
    station_id: str, seq: int, version: str, ok: bool, at: datetime, **more: object
) -> JobRecord:
    """A job of ``station_id`` for a rollout's tests: JobSeq ``seq``, run by ``version``,
    started and ended ``at``; epoch 0 and a 60 s cycle unless ``more`` says otherwise."""
    fields: dict[str, object] = {"epoch": 0, "cycle_time_ms": 60000} | more
    return JobRecord.model_validate(
        {
            "station_id": station_id,
            "job_seq": seq,
            "part_id": None,
            "program_no": 1,
            "policy_version": version,
            "started_at": at,
            "ended_at": at,
            "ok": ok,
            **fields,
        }
    )


class Jobs:
    """Records ST10's jobs one after another, each a second later than the last."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.seq = 0
        recipe = session.get(m.Recipe, session.info["recipe"])
        assert recipe is not None
        self.recipe_id, self.takt_s = recipe.id, recipe.takt_s

    def add(
        self,
        version: str,
        ok: bool = True,
        over_takt: bool = False,
        rollout: int | None = None,
        attempt: int = 1,
    ) -> int:
        self.seq += 1
        at = T0 + timedelta(seconds=self.seq)
        cycle_s = self.takt_s + 5 if over_takt else self.takt_s - 5
        rec = job_record(
            "ST10",
            self.seq,
            version,
            ok,
            at,
            recipe_id=self.recipe_id,
            task="nut_install",
            cycle_time_ms=int(cycle_s * 1000),
            attempt=attempt,
        )
        job_id = record_job(self.session, rec).job_id
        if rollout is not None:
            arm = Arm.CANDIDATE if version == "v2" else Arm.INCUMBENT
            ro.record_arm(self.session, rollout, job_id, arm)
        return job_id


def _audit(session: Session, action: str) -> list[tuple[str, str]]:
    rows = session.execute(
        select(m.AuditEntry.actor, m.AuditEntry.outcome)
        .where(m.AuditEntry.action == action)
        .order_by(m.AuditEntry.id)
    )
    return [(a, o) for a, o in rows]


def test_start_takes_the_incumbent_from_the_latest_job_and_is_audited(line_db: Session) -> None:
    Jobs(line_db).add("v1")
    row = Acts(line_db, SUPERVISOR).start_rollout("ST10", "v2")
    assert (row.incumbent_version, row.candidate_version, row.share) == ("v1", "v2", 0.2)
    assert (row.state, row.started_by, row.decided_by) == ("running", "sup-anna", None)
    assert _audit(line_db, "rollout.start") == [("sup-anna", "done")]


def test_a_second_rollout_and_the_incumbent_as_candidate_are_refused(line_db: Session) -> None:
    Jobs(line_db).add("v1")
    acts = Acts(line_db, SUPERVISOR)
    with pytest.raises(ro.RolloutRefused, match="v1 already runs at ST10"):
        acts.start_rollout("ST10", "v1")
    first = acts.start_rollout("ST10", "v2")
    with pytest.raises(ro.RolloutRefused, match=f"ST10 already runs rollout {first.id} of v2"):
        acts.start_rollout("ST10", "v3")
    assert _audit(line_db, "rollout.start") == [
        ("sup-anna", "refused"),
        ("sup-anna", "done"),
        ("sup-anna", "refused"),
    ]


def test_no_incumbent_unknown_station_and_bad_share_are_refused(line_db: Session) -> None:
    with pytest.raises(ro.RolloutRefused, match="no job with a policy version"):
        ro.start(line_db, "ST10", "v2", author="sup-anna")
    assert ro.start(line_db, "ST10", "v2", author="sup-anna", incumbent="v1").id
    with pytest.raises(InvalidInput, match="unknown station 'ST99'; known stations: ST10"):
        ro.start(line_db, "ST99", "v2", author="sup-anna", incumbent="v1")
    with pytest.raises(InvalidInput, match="share must be between 0 and 1"):
        ro.start(line_db, "ST20", "v2", author="sup-anna", incumbent="v1", share=1.5)


def test_a_supervisor_stops_a_rollout_and_a_new_one_may_start(line_db: Session) -> None:
    Jobs(line_db).add("v1")
    acts = Acts(line_db, SUPERVISOR)
    acts.start_rollout("ST10", "v2")
    stopped = acts.stop_rollout("ST10", reason="scrap spike on the left side")
    assert (stopped.state, stopped.decided_by) == ("stopped", "sup-anna")
    assert stopped.reason == "scrap spike on the left side" and stopped.decided_at is not None
    with pytest.raises(ro.RolloutRefused, match="no rollout runs at ST10"):
        acts.stop_rollout("ST10", reason="again")
    assert _audit(line_db, "rollout.stop") == [("sup-anna", "done"), ("sup-anna", "refused")]
    assert acts.start_rollout("ST10", "v3").state == "running"
    # The rule does not decide a rollout a person ended.
    assert ro.decide(line_db, stopped.id) is None and stopped.state == "stopped"


def test_failing_candidate_jobs_roll_back_with_author_system(line_db: Session) -> None:
    jobs = Jobs(line_db)
    jobs.add("v1")
    rollout = ro.start(line_db, "ST10", "v2", author="sup-anna").id
    for _ in range(20):
        jobs.add("v1", rollout=rollout)
    for _ in range(6):
        jobs.add("v2", ok=False, rollout=rollout)
    verdict = ro.decide(line_db, rollout)
    assert verdict is not None and verdict.decision.value == "continue"
    row = line_db.get(m.Rollout, rollout)
    assert row is not None and row.state == "running"
    assert row.evidence["jobs"] == {"incumbent": 20, "candidate": 6}
    jobs.add("v2", ok=False, rollout=rollout)
    ro.decide(line_db, rollout)
    assert (row.state, row.decided_by) == ("rolled_back", "system")
    assert row.decided_at == T0 + timedelta(seconds=jobs.seq)  # when the deciding job ended
    assert "worse" in row.reason
    assert row.evidence["yields"] == {"incumbent": 1.0, "candidate": 0.0}


def test_incumbent_failures_promote_and_jobs_outside_the_rollout_do_not_count(
    line_db: Session,
) -> None:
    jobs = Jobs(line_db)
    for _ in range(50):
        jobs.add("v1", ok=False)  # before the rollout: not evidence
    rollout = ro.start(line_db, "ST10", "v2", author="sup-anna").id
    for _ in range(52):
        jobs.add("v1", ok=False, rollout=rollout)
    assert ro.decide(line_db, rollout) is not None
    assert ro.status(line_db, "ST10")[0].state == "running"
    jobs.add("v1", ok=False, rollout=rollout)
    ro.decide(line_db, rollout)
    (status,) = ro.status(line_db, "ST10")
    assert (status.state, status.decided_by) == ("promoted", "system")
    assert (status.incumbent_jobs, status.incumbent_fpy, status.candidate_jobs) == (53, 0.0, 0)


def test_the_rule_compares_with_the_incumbents_last_jobs_before_the_rollout(
    line_db: Session,
) -> None:
    jobs = Jobs(line_db)
    for _ in range(10):
        jobs.add("v1", ok=False)  # older than the reference's last 25
    for _ in range(19):
        jobs.add("v1")
    jobs.add("v1", attempt=2)  # OK on a retry: not a first pass
    for _ in range(5):
        jobs.add("v1", ok=False)
        jobs.add("v0", ok=False)  # another version's
    start = T0 + timedelta(seconds=jobs.seq, milliseconds=500)
    rollout = ro.start(line_db, "ST10", "v2", author="sup-anna", incumbent="v1", at=start).id
    jobs.add("v1", ok=False)  # after the start, outside the rollout: neither
    for _ in range(3):
        jobs.add("v2", ok=False, rollout=rollout)
        jobs.add("v1", rollout=rollout)
    rule = RolloutRule(reference_jobs=25, min_reference_jobs=20)
    verdict = ro.decide(line_db, rollout, rule=rule)
    assert verdict is not None and verdict.decision.value == "continue"
    row = line_db.get(m.Rollout, rollout)
    assert row is not None
    assert row.evidence["reference"] == {"jobs": 25, "ok": 19, "yield": 0.76}
    assert row.evidence["test"] == "reference"
    assert row.evidence["jobs"] == {"incumbent": 3, "candidate": 3}
    (status,) = ro.status(line_db, "ST10")
    assert (status.reference_jobs, status.reference_fpy) == (25, 0.76)


def test_candidate_jobs_over_takt_roll_back(line_db: Session) -> None:
    jobs = Jobs(line_db)
    jobs.add("v1")
    rollout = ro.start(line_db, "ST10", "v2", author="sup-anna").id
    for _ in range(3):
        jobs.add("v2", over_takt=True, rollout=rollout)
        jobs.add("v1", over_takt=True, rollout=rollout)
    ro.decide(line_db, rollout)
    row = line_db.get(m.Rollout, rollout)
    assert row is not None and row.state == "rolled_back" and "over takt" in row.reason


def test_an_arm_is_recorded_once(line_db: Session) -> None:
    jobs = Jobs(line_db)
    jobs.add("v1")
    rollout = ro.start(line_db, "ST10", "v2", author="sup-anna").id
    job = jobs.add("v2", rollout=rollout)
    ro.record_arm(line_db, rollout, job, Arm.INCUMBENT)
    assert line_db.scalars(select(m.RolloutJob.arm)).all() == ["candidate"]


def test_status_shows_each_stations_latest_or_one_stations_history(line_db: Session) -> None:
    first = ro.start(line_db, "ST10", "v2", author="a", incumbent="v1")
    ro.stop(line_db, "ST10", author="a", reason="wrong build")
    second = ro.start(line_db, "ST10", "v3", author="a", incumbent="v1")
    other = ro.start(line_db, "ST20", "w2", author="b", incumbent="w1", share=0.1)
    latest = {s.station_id: s.rollout_id for s in ro.status(line_db)}
    assert latest == {"ST10": second.id, "ST20": other.id}
    assert [s.rollout_id for s in ro.status(line_db, "ST10")] == [second.id, first.id]
    assert ro.status(line_db, "ST30") == []
