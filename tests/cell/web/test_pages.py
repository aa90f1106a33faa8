"""The pages end to end in headless Chromium against a real server."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from sqlalchemy import text

from cell.record import models as m
from cell.record.roster import robot_for_station
from tests.cell.api.conftest import ApiWorld
from tests.cell.web.conftest import sign_in


def _assign(page: Page, action: str, robot: str, reason: str, station: str = "") -> None:
    page.select_option("#action", action)
    page.select_option("#robot", robot)
    page.fill("#station", station)
    page.fill("#reason", reason)
    page.click("#assign-submit")


def test_supervisor_reassigns_a_robot_through_the_page(page: Page, web_world: ApiWorld) -> None:
    sign_in(page, web_world, "supervisor-user")
    expect(page.locator("#who")).to_have_text("supervisor-user (supervisor)")
    expect(page.locator("#roster tbody tr[data-id=R2] td").nth(1)).to_have_text("ST20")
    _assign(page, "maintenance", "R1", "gripper check")
    expect(page.locator("#message")).to_have_text("maintenance done: R1")
    _assign(page, "reassign", "R2", "cover the nut station", "ST10")
    expect(page.locator("#message")).to_have_text("reassign done: R2")
    row = page.locator("#roster tbody tr[data-id=R2] td")
    expect(row.nth(1)).to_have_text("ST10")
    expect(row.nth(3)).to_have_text("supervisor-user")
    with web_world.session() as s:
        assert robot_for_station(s, "ST10") == "R2"
    # A refusal by the cell's rules shows its reason.
    _assign(page, "reassign", "R3", "try", "ST20")
    expect(page.locator("#message")).to_contain_text("R3 has no skill for screwing")


def test_a_viewer_is_refused_and_nothing_changes(page: Page, web_world: ApiWorld) -> None:
    sign_in(page, web_world, "viewer-user")
    with web_world.session() as s:
        before = s.execute(text("SELECT count(*) FROM assignments")).scalar()
    _assign(page, "maintenance", "R3", "not mine to do")
    expect(page.locator("#message")).to_have_text(
        "refused (403): viewer-user is viewer; this needs supervisor or above"
    )
    with web_world.session() as s:
        assert s.execute(text("SELECT count(*) FROM assignments")).scalar() == before


def test_technician_works_the_alert_queue(page: Page, web_world: ApiWorld) -> None:
    with web_world.session() as s:
        job = s.execute(text("SELECT id, part_id FROM jobs WHERE NOT ok LIMIT 1")).one()
        alert = m.Alert(
            station_id="ST10",
            job_id=job.id,
            part_id=job.part_id,
            kind="nok",
            error_code=201,
            message="cross thread at left 2",
        )
        s.add(alert)
        s.commit()
        alert_id = alert.id
    sign_in(page, web_world, "technician-user")
    page.goto("/alerts")
    row = page.locator(f"#alerts tr[data-id=alert-{alert_id}]")
    expect(row).to_contain_text("cross thread at left 2")
    row.get_by_role("button", name="Acknowledge").click()
    expect(row.locator("td").nth(4)).to_have_text("technician-user")
    row.get_by_role("button", name="Reworked OK").click()
    expect(row.locator("td").nth(5)).to_have_text("reworked_ok")
    row.get_by_role("button", name="Clear").click()
    expect(row).to_have_count(0)
    with web_world.session() as s:
        a = s.get(m.Alert, alert_id)
        assert (a.cleared_by, a.rework) == ("technician-user", "reworked_ok")


def test_dashboard_draws_its_charts(page: Page, web_world: ApiWorld) -> None:
    page.goto("/dashboard")
    expect(page.locator("#station option")).to_have_count(6)  # all + five stations
    page.fill("#days", "3660")
    page.click("#filters button")
    for chart in ("#yield-chart", "#pareto-chart", "#spc-chart", "#cycle-chart"):
        expect(page.locator(f"{chart} svg")).to_have_count(1)
    expect(page.locator("#yield-table tbody tr")).to_have_count(5)
    expect(page.locator("#yield-chart circle").first).to_be_attached()
    expect(page.locator("#spc-label")).to_contain_text("Cpk")


def test_part_lookup(page: Page, web_world: ApiWorld) -> None:
    with web_world.session() as s:
        part = s.execute(
            text("SELECT part_id FROM jobs WHERE station_id = 'L1-ST10' AND NOT ok LIMIT 1")
        ).scalar_one()
    page.goto("/part")
    page.fill("#part-id", part)
    page.click("#part-form button")
    expect(page.locator("#part .job").first).to_contain_text("L1-ST10")
    expect(page.locator("#part .job.nok")).not_to_have_count(0)
    page.fill("#part-id", "NOPE-1")
    page.click("#part-form button")
    expect(page.locator("#message")).to_have_text("refused (404): no part 'NOPE-1' on record")
