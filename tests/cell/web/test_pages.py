"""The pages end to end in headless Chromium against a real server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect
from sqlalchemy import text

from cell.record import models as m
from cell.record.jobs import JobRecord, record_job
from cell.record.roster import robot_for_station
from robot.jobs import FastenerResult, Side
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


def _few_recent_jobs(world: ApiWorld, n: int = 4) -> list[str]:
    """``n`` nut jobs at ST10 an hour ago, each with one fastener and its curve; the last
    one NOK. The generated history is months older, so a recent window holds only these."""
    start = datetime.now(UTC) - timedelta(hours=1)
    parts = [f"RECENT-{i}-{start:%H%M%S}" for i in range(n)]
    with world.session() as s:
        for i, part in enumerate(parts):
            ok = i < n - 1
            rec = JobRecord(
                station_id="ST10",
                epoch=9,
                job_seq=1000 + i + int(start.timestamp()) % 10_000 * 10,
                part_id=part,
                program_no=1,
                robot_id="R1",
                task="nut_install",
                policy_version="expert",
                started_at=start + timedelta(minutes=i),
                ended_at=start + timedelta(minutes=i, seconds=55),
                cycle_time_ms=55_000,
                ok=ok,
                error_code=0 if ok else 201,
                fasteners=[
                    FastenerResult(
                        position=1,
                        side=Side.LEFT,
                        torque_nm=24.0 if ok else 9.0,
                        angle_deg=420.0 if ok else 700.0,
                        torque_min_nm=20.0,
                        torque_max_nm=28.0,
                        angle_min_deg=300.0,
                        angle_max_deg=540.0,
                        ok=ok,
                        error_code=0 if ok else 201,
                        trace_angle_deg=[0.0, 200.0, 400.0, 420.0 if ok else 700.0],
                        trace_torque_nm=[0.0, 3.0, 12.0, 24.0 if ok else 9.0],
                    )
                ],
                episode={"path": f"ST10/{part}", "frames": 900, "bytes": 2_400_000},
            )
            record_job(s, rec)
    return parts


def test_dashboard_is_honest_on_small_samples(page: Page, web_world: ApiWorld) -> None:
    _few_recent_jobs(web_world)
    page.goto("/dashboard")
    expect(page.locator("#task option")).not_to_have_count(1)  # all + the tasks on record
    expect(page.locator("#policy option")).not_to_have_count(1)
    # The last 7 days hold only the 4 recent jobs: no Cpk, no chart, but n is shown.
    row = page.locator("#capability tbody tr[data-id='ST10/left/1']")
    expect(row).to_contain_text("too few to judge (n < 50)")
    expect(row.locator("td").nth(2)).to_have_text("3")
    expect(page.locator("#spc-chart")).to_contain_text("too few to judge")
    expect(page.locator("#spc-label")).to_contain_text("n = 4")
    expect(page.locator("#message")).to_be_hidden()  # no red refusal banner
    expect(page.locator("#cycle-charts figure")).to_have_count(1)


def test_dashboard_draws_every_station_on_a_full_day(page: Page, web_world: ApiWorld) -> None:
    page.goto("/dashboard")
    expect(page.locator("#station option[value='L1-ST50']")).to_have_count(1)
    page.fill("#start", "2026-03-09")
    page.fill("#end", "2026-03-10")
    page.click("#filters button")
    expect(page.locator("#cycle-charts figure")).to_have_count(5)  # every station
    expect(page.locator("#cycle-charts figure svg")).to_have_count(5)
    for chart in ("#yield-chart", "#pareto-chart", "#spc-chart"):
        expect(page.locator(f"{chart} svg")).to_have_count(1)
    expect(page.locator("#yield-table tbody tr")).to_have_count(5)
    expect(page.locator("#spc-label")).to_contain_text("n = 100")
    cpk = page.locator("#capability tbody tr").first.locator("td").nth(6)
    expect(cpk).not_to_have_text("")
    # Yield axis: a percent range below 100 %, dates under the chart.
    ticks = page.locator("#yield-chart .y-tick").all_text_contents()
    assert ticks[-1] == "100.0 %" and float(ticks[0].split()[0]) < 100, ticks
    expect(page.locator("#yield-chart .x-tick").first).to_have_text("2026-03-09")
    page.select_option("#station", "L1-ST20")
    page.select_option("#task", "screwing")
    page.click("#filters button")
    expect(page.locator("#cycle-charts figure")).to_have_count(1)
    expect(page.locator("#scope")).to_contain_text("station L1-ST20 · task screwing")


def test_part_page_plots_each_fastener_against_its_window(page: Page, web_world: ApiWorld) -> None:
    parts = _few_recent_jobs(web_world)
    page.goto("/part?id=" + parts[-1])
    card = page.locator("#part .job.nok")
    expect(card).to_contain_text("ST10 · NOK cross_thread")
    expect(card).to_contain_text(f"episode ST10/{parts[-1]}")  # where its episode is kept
    expect(card).to_contain_text("900 ticks · 2.4 MB")
    fig = card.locator(".trace-fig.nok")
    expect(fig.locator("svg polyline.curve")).to_have_count(1)
    expect(fig.locator("svg rect.window")).to_have_count(1)
    expect(fig.locator("figcaption")).to_contain_text("9.00 Nm (20–28)")
    # The NOK list links to the part, as alerts and the Pareto do.
    page.goto("/part?nok=1&station=ST10")
    link = page.locator("#nok-list a", has_text=parts[-1])
    expect(link).to_have_count(1)
    link.click()
    expect(page.locator("#part .job.nok .trace-fig")).to_have_count(1)


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
    expect(page.locator("#part .job.nok .trace-fig svg").first).to_be_visible()
    page.fill("#part-id", "NOPE-1")
    page.click("#part-form button")
    expect(page.locator("#message")).to_have_text("refused (404): no part 'NOPE-1' on record")
