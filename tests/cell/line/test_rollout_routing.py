"""Canary rollouts on the real line: a rollout started on ST10 sends each job to the arm
its key picks, the job names that arm's version and the worker runs it; a promoted
candidate becomes the version every later job names.

Real parts (see ``harness``): the PLC simulator, the orchestrator, a worker process with
the shipped policy as its default and a checkpoint store holding a second version (the
shipped checkpoint with one changed byte of weights-file metadata).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from cell.cli import app
from cell.record import models as m
from cell.record import rollouts as ro
from cell.record.rollout_rule import Arm, arm_for
from policy.runtime import checkpoint_dir, policy_version
from robot.jobs import Task
from tests.cell.harness import Running, running_line, sample_line
from tests.checkpoint_variants import variant

pytestmark = pytest.mark.slow
SCALE = 40.0  # a ~55 s nut job takes ~1.4 s of wall time, plus the policy's inference


def _arms(run: Running) -> list[tuple[str, str | None, str]]:
    """(job key, version on record, arm) of each job of a rollout, in job order."""
    with run.session() as s:
        rows = s.execute(
            select(
                m.Job.station_id, m.Job.epoch, m.Job.job_seq, m.Job.policy_version, m.RolloutJob.arm
            )
            .join(m.RolloutJob, m.RolloutJob.job_id == m.Job.id)
            .order_by(m.Job.id)
        ).all()
    return [(f"{st}:{ep}:{seq}", version, arm) for st, ep, seq, version, arm in rows]


async def test_a_rollout_routes_jobs_to_both_versions_and_a_promotion_sticks(
    tmp_path: Path,
    make_database: Callable[[], str],
    redis_url: str,
    workers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    incumbent = policy_version(Task.NUT_INSTALL)
    candidate = variant(checkpoint_dir(Task.NUT_INSTALL), tmp_path / "checkpoints")
    monkeypatch.setenv("INTERN_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    line, cfg = sample_line(tmp_path, stations=("ST10",))
    w = workers(cfg, SCALE)
    w.policy = "auto"  # no version named: the shipped checkpoint, the incumbent
    db = make_database()
    monkeypatch.setenv("INTERN_DATABASE_URL", db)
    async with running_line(line, db, redis_url, tmp_path, scale=SCALE, parts=None) as run:
        with run.session() as s:
            rollout = ro.start(
                s, "ST10", candidate, author="sup-anna", share=0.5, incumbent=incumbent
            ).id
        w.start("R1")  # no job is routed before the rollout runs
        await run.until(lambda: len(_arms(run)) >= 6, 240, "six jobs of the rollout settled")
        arms = _arms(run)
        for key, version, arm in arms:
            assert arm == arm_for(key, 0.5).value, key
            assert version == (candidate if arm == Arm.CANDIDATE else incumbent), key
        assert {arm for _, _, arm in arms} == {"candidate", "incumbent"}

        shown = CliRunner().invoke(
            app, ["policy", "rollout", "status", "--station", "ST10", "--format", "json"]
        )
        assert shown.exit_code == 0, shown.output
        row = json.loads(shown.stdout)[0]
        assert (row["rollout_id"], row["candidate_version"]) == (rollout, candidate)
        assert row["candidate_jobs"] + row["incumbent_jobs"] >= 6

        # The rule's promotion, written as ``rollouts.decide`` writes it.
        with run.session() as s:
            s.execute(update(m.Rollout).where(m.Rollout.id == rollout).values(state="promoted"))
            s.commit()
            last = s.scalar(select(m.Job.id).order_by(m.Job.id.desc()).limit(1))

        def later_versions() -> list[str | None]:
            with run.session() as s:
                return list(s.scalars(select(m.Job.policy_version).where(m.Job.id > last + 1)))

        await run.until(lambda: len(later_versions()) >= 2, 120, "two jobs after the promotion")
        assert set(later_versions()) == {candidate}
