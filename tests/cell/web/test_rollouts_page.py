"""The rollouts page in headless Chromium: a station's rollout with each arm's jobs and
yield, the incumbent's yield before the rollout, the rule's interval and its state, read
through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect

from cell.record import rollouts as ro
from cell.record.jobs import JobRecord, record_job
from cell.record.rollout_rule import Arm
from tests.cell.api.conftest import ApiWorld
from tests.cell.record.test_rollouts import job_record
from tests.cell.web.conftest import sign_in

T0 = datetime(2026, 3, 3, 6, 0, tzinfo=UTC)


def _job(seq: int, version: str, ok: bool = True) -> JobRecord:
    at = T0 + timedelta(minutes=seq)
    # Keys of its own (epoch 97), beside the generated history.
    return job_record("ST30", seq, version, ok, at, epoch=97)


def test_the_rollouts_page_lists_a_running_rollout(page: Page, web_world: ApiWorld) -> None:
    with web_world.session() as s:
        # The incumbent's record before the rollout: one job of two passed first time.
        record_job(s, _job(1, "inc-v1"))
        record_job(s, _job(2, "inc-v1", ok=False))
        rollout = ro.start(
            s,
            "ST30",
            "cand-v2",
            author="sup-anna",
            share=0.5,
            incumbent="inc-v1",
            at=T0 + timedelta(minutes=2, seconds=30),
        )
        arms = [Arm.CANDIDATE, Arm.INCUMBENT, Arm.CANDIDATE, Arm.INCUMBENT, Arm.INCUMBENT]
        for seq, arm in enumerate(arms, start=3):
            version = "cand-v2" if arm is Arm.CANDIDATE else "inc-v1"
            job = record_job(s, _job(seq, version, ok=seq != 5))  # one candidate job fails
            ro.record_arm(s, rollout.id, job.job_id, arm)
        ro.decide(s, rollout.id)
        rollout_id = rollout.id
    sign_in(page, web_world, "viewer-user")
    page.goto("/rollouts")
    cells = page.locator(f"#rollouts tbody tr[data-id='{rollout_id}'] td")
    expect(cells.nth(0)).to_have_text("ST30")
    expect(cells.nth(1)).to_have_text("cand-v2")
    expect(cells.nth(2)).to_have_text("inc-v1")
    expect(cells.nth(3)).to_have_text("50.00 %")
    expect(cells.nth(4)).to_have_text("2 / 3")
    expect(cells.nth(5)).to_have_text("50.00 %")
    expect(cells.nth(6)).to_have_text("100.00 %")
    expect(cells.nth(7)).to_have_text("50.00 % of 2")
    expect(cells.nth(8)).to_contain_text("–")
    expect(cells.nth(9)).to_have_text("running")
    expect(page.locator("nav")).to_contain_text("Rollouts")
