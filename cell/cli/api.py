"""``intern api``: serve the API, add users, issue tokens."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from cell.cli.common import database, fail, invalid

if TYPE_CHECKING:
    import uvicorn

api_app = typer.Typer(no_args_is_help=True, help="The HTTP API and its users.")


def _stopped_server_class() -> type[uvicorn.Server]:
    """A uvicorn server whose graceful stop on a signal ends the command with status 0.

    Why: after its graceful shutdown uvicorn raises the signal that stopped it once more;
    here that would reach the command's own SIGTERM handler and exit 143 although the
    server stopped as asked (see ``cell.cli.common.stop_on_signals``). uvicorn is imported
    here, not at start-up: every other ``intern`` command would pay for it."""
    import uvicorn

    class StoppedServer(uvicorn.Server):
        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                yield
                self._captured_signals.clear()

    return StoppedServer


@api_app.command("serve")
def serve(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default INTERN_API_HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8470).")] = None,
) -> None:
    """Serve the API, its web pages and /metrics with uvicorn. A bind other than loopback
    needs INTERN_API_ANONYMOUS_READ=false and at least one user."""
    import uvicorn
    from sqlalchemy import func, select

    from cell.api import ApiSettings, create_app
    from cell.record.models import ApiUser

    with database(broker=True) as (s, svc):
        overrides: dict[str, Any] = {
            "database_url": svc.database_url,
            "redis_url": svc.redis_url,
        }
        if host is not None:
            overrides["host"] = host
        if port is not None:
            overrides["port"] = port
        try:
            settings = ApiSettings(**overrides)
        except ValidationError as exc:
            raise invalid(exc) from None
        users = s.scalar(select(func.count()).select_from(ApiUser).where(~ApiUser.disabled))
        if not users and not settings.anonymous_read:
            raise fail("no API users yet: add one with `intern api user-add NAME --role admin`")
        s.close()
        Console(stderr=True).print(
            f"serving http://{settings.host}:{settings.port}/ (OpenAPI at /docs)"
        )
        config = uvicorn.Config(
            create_app(settings), host=settings.host, port=settings.port, log_level="info"
        )
        _stopped_server_class()(config).run()


@api_app.command("user-add")
def user_add(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="viewer, technician, engineer, supervisor, admin.")],
    password: Annotated[bool, typer.Option("--password", help="Ask for a password.")] = False,
) -> None:
    """Add a user and print a first token (shown once). Without --password the user is
    API-only: tokens for scripts, no sign-in to the pages. --password on an API-only user
    that exists gives it a password."""
    from cell.record.users import (
        AuthError,
        Role,
        UserExists,
        add_password,
        create_user,
        issue_token,
    )

    try:
        r = Role.parse(role)
    except ValueError as exc:
        raise fail(str(exc)) from None
    secret = (
        typer.prompt("password", hide_input=True, confirmation_prompt=True) if password else None
    )
    with database() as (s, _):
        try:
            create_user(s, username, r, secret)
            token = issue_token(s, username, label="cli")
        except UserExists as exc:
            if secret is None:
                raise fail(str(exc)) from None
            try:
                kept = add_password(s, username, secret)
            except AuthError as again:
                raise fail(str(again)) from None
            Console().print(f"password added for {username} ({kept.label})", highlight=False)
            return
        except AuthError as exc:
            raise fail(str(exc)) from None
    Console().print(f"user {username} ({r.label}); token: {token}", highlight=False)
    if secret is None:
        Console(stderr=True).print(
            f"note: {username} is API-only: it signs in with tokens (scripts, Prometheus), "
            "not on the pages. To give it a password: "
            f"intern api user-add {username} --role {r.label} --password",
            highlight=False,
            soft_wrap=True,
        )


@api_app.command("token")
def token(username: Annotated[str, typer.Argument(help="An existing user.")]) -> None:
    """Issue another token for a user (for scripts); shown once."""
    from cell.record.users import AuthError, issue_token

    with database() as (s, _):
        try:
            t = issue_token(s, username, label="cli")
        except AuthError as exc:
            raise fail(str(exc)) from None
    Console().print(t, highlight=False)
