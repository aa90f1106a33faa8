"""HTML pages. They hold no data themselves: the scripts read and write through the
JSON API with the signed-in user's token, so the API's role checks apply to the pages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from cell.api.guard import NONCE_KEY

HERE = Path(__file__).parent
PAGES = {
    "live": "Line now",
    "dashboard": "Yield dashboard",
    "roster": "Robot roster",
    "alerts": "Alert queue",
    "part": "Part lookup",
    "rollouts": "Rollouts",
    "login": "Sign in",
}


def install(app: FastAPI) -> None:
    templates = Jinja2Templates(directory=HERE / "templates")
    router = APIRouter(include_in_schema=False)

    def page(name: str) -> Callable[[Request], HTMLResponse]:
        def render(request: Request) -> HTMLResponse:
            context = {"title": PAGES[name], "page": name, "pages": PAGES}
            # Inline scripts run only with this request's nonce (``cell.api.guard``).
            context["nonce"] = getattr(request.state, NONCE_KEY, "")
            return templates.TemplateResponse(request, f"{name}.html", context)

        return render

    router.add_api_route("/", page("live"), methods=["GET"], response_class=HTMLResponse)
    for name in PAGES:
        router.add_api_route(f"/{name}", page(name), methods=["GET"], response_class=HTMLResponse)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
