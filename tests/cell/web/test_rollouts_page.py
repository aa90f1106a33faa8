"""The rollouts page in headless Chromium: a station's rollout with each arm's jobs and
yield, the rule's interval and its state, read through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect

from cell.record import rollouts as ro
from cell.record.jobs import JobRecord, record_job
from cell.record.rollout_rule import Arm
from tests.cell.api.conftest import ApiWorld
from tests.cell.web.conftest import sign_in

T0 = datetime(2026, 3, 3, 6, 0, tzinfo=UTC)


def test_the_rollouts_page_lists_a_running_rollout(page: Page, web_world: ApiWorld) -> None:
    with web_world.session() as s:
        rollout = ro.start(s, "ST30", "cand-v2", author="sup-anna", share=0.5, incumbent="inc-v1")
        arms = [Arm.CANDIDATE, Arm.INCUMBENT, Arm.CANDIDATE, Arm.INCUMBENT, Arm.INCUMBENT]
        for seq, arm in enumerate(arms, start=1):
            at = T0 + timedelta(minutes=seq)
            rec = JobRecord(
                station_id="ST30",
                epoch=97,  # keys of its own, beside the generated history
                job_seq=seq,
                part_id=None,
                program_no=1,
                policy_version="cand-v2" if arm is Arm.CANDIDATE else "inc-v1",
                started_at=at,
                ended_at=at,
                cycle_time_ms=60000,
                ok=seq != 3,  # one candidate job fails its first pass
            )
            ro.record_arm(s, rollout.id, record_job(s, rec).job_id, arm)
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
    expect(cells.nth(7)).to_contain_text("–")
    expect(cells.nth(8)).to_have_text("running")
    expect(page.locator("nav")).to_contain_text("Rollouts")
