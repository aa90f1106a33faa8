"""A real uvicorn server on a loopback port and headless Chromium from Debian's package,
driven by Playwright. Without Chromium the tests are skipped with the reason, except in
CI, where they fail."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import uvicorn

from cell.api import ApiSettings, create_app
from cell.services import free_port
from tests.cell.api.conftest import ApiWorld, build_world

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def web_world(make_database: Callable[[], str]) -> ApiWorld:
    return build_world(make_database())


@pytest.fixture(scope="session")
def server(web_world: ApiWorld) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(
        create_app(ApiSettings(database_url=web_world.url, port=port)),
        host="127.0.0.1",
        port=port,
        log_level="warning",
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not answer within 30 s")
        time.sleep(0.1)
    yield base
    srv.should_exit = True
    thread.join(15)


# Package scope: Playwright's sync API keeps an event loop running in this thread while
# the browser lives, which would break every asyncio test that runs after the pages.
@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        message = "Debian's chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it: its absence is a broken set-up
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, timeout=60_000)
        yield b
        b.close()


@pytest.fixture
def page(browser, server: str) -> Iterator[object]:  # type: ignore[no-untyped-def]
    context = browser.new_context(base_url=server)
    context.set_default_timeout(20_000)
    p = context.new_page()
    yield p
    context.close()


def sign_in(page, world: ApiWorld, user: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/login")
    page.fill("#username", user)
    page.fill("#password", world.passwords[user])
    page.click("button[type=submit]")
    page.wait_for_url("**/roster")
