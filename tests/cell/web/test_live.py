"""The live line page in Chromium against a running line (PLC simulator, orchestrator,
a robot worker process, PostgreSQL, Redis): a station goes Execute -> Held when a NOK on a
``hold`` recipe comes, its alert appears, and it runs again once a technician has cleared
the alert, all without reloading the page."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from cell.api import ApiSettings, create_app
from cell.config import LineConfig
from cell.record.acts import Actor, Acts
from cell.record.alerts import Rework, open_alerts
from cell.services import free_port
from tests.cell.api.conftest import serving
from tests.cell.harness import running_line, sample_line

pytestmark = pytest.mark.slow
SCALE = 10.0  # a ~55 s nut job lasts ~5.5 s of wall time: long enough to be seen running
WAIT_MS = 90_000


class LineThread:
    """``running_line`` in a thread of its own (Playwright's sync API owns this one)."""

    def __init__(self, line: LineConfig, db: str, redis_url: str, data_dir: Path) -> None:
        self.args = (line, db, redis_url, data_dir)
        self.ready, self.stop = threading.Event(), threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            async with running_line(*self.args, scale=SCALE, parts=None):
                self.ready.set()
                await asyncio.to_thread(self.stop.wait)

        try:
            asyncio.run(main())
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    def __enter__(self) -> LineThread:
        self.thread.start()
        self.ready.wait(120)
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(90)


@pytest.fixture
def live_line(
    tmp_path: Path, make_database: Callable[[], str], redis_url: str, workers
) -> Iterator[tuple[str, str]]:
    """The sample line's nut station, every job of which fails and holds; yields the
    database URL and the API's base URL."""

    def hard(data: dict) -> None:
        data["stations"][0]["recipes"][0]["difficulty"] = 5.0

    line, cfg = sample_line(tmp_path, hard, stations=("ST10",))
    workers(cfg, SCALE).start("R1")
    db = make_database()
    port = free_port()
    app = create_app(ApiSettings(database_url=db, redis_url=redis_url, port=port))
    with LineThread(line, db, redis_url, tmp_path), serving(app, port) as url:
        yield db, url


def _clear_alerts(db: str) -> int:
    engine = create_engine(db)
    with Session(engine) as s:
        alerts = open_alerts(s, "ST10")
        acts = Acts(s, Actor("tech-kim", "technician"))
        for a in alerts:
            acts.acknowledge(a.id)
            if a.job_id is not None:
                acts.rework(a.id, Rework.SCRAPPED)
            acts.clear(a.id)
    engine.dispose()
    return len(alerts)


def test_station_held_on_a_nok_and_back_after_the_technician(
    browser: Browser, live_line: tuple[str, str]
) -> None:
    db, url = live_line
    context = browser.new_context(base_url=url)
    page = context.new_page()
    page.goto("/")
    page.evaluate("window.loadedOnce = 'yes'")
    tile = page.locator('[data-station="ST10"]')
    state = tile.locator(".state")
    expect(tile.locator("dd.robot")).to_contain_text("R1 · worker online", timeout=WAIT_MS)
    expect(tile.locator("dd.plc")).to_contain_text("connected", timeout=WAIT_MS)
    expect(state).to_have_text("execute", timeout=WAIT_MS)
    expect(tile.locator(".job")).to_contain_text("of takt 76")
    expect(state).to_have_text("held", timeout=WAIT_MS)
    alert = tile.locator(".alert")
    expect(alert).to_have_count(1)
    expect(alert).to_contain_text("nok hold")
    expect(alert).to_contain_text("waiting for a technician")
    expect(tile.locator(".chip.nok")).to_have_count(1)
    expect(page.locator("#summary")).to_contain_text("1 held · 1 alerts waiting")
    assert _clear_alerts(db) == 1
    expect(state).not_to_have_text("held", timeout=WAIT_MS)
    expect(state).to_have_text("execute", timeout=WAIT_MS)  # the next part is taken
    assert page.evaluate("window.loadedOnce") == "yes"  # never reloaded
    context.close()
