"""``/docs`` renders the API's operations in Chromium with no network beyond the server:
Swagger UI's files come from the server itself, not a CDN, and run under its CSP."""

from __future__ import annotations

from playwright.sync_api import Page, Route, expect


def test_docs_render_without_outside_network(page: Page, server: str) -> None:
    outside: list[str] = []
    problems: list[str] = []

    def only_the_server(route: Route) -> None:
        if route.request.url.startswith(server):
            route.continue_()
        else:  # a plant network: nothing else answers
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_server)
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("intern-cells")
    expect(page.locator(".opblock-summary-path", has_text="/api/yield")).to_be_visible()
    expect(page.locator(".opblock").first).to_be_visible()
    assert outside == []
    assert not [p for p in problems if "Content Security Policy" in p], problems
