"""Request dependencies as ``Annotated`` aliases: a database session, who is asking, and
role requirements. HTTP errors are raised here and in the routes, nowhere deeper."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from cell.record.acts import Actor, audit
from cell.record.users import AuthError, Principal, Role, principal_for

_bearer = HTTPBearer(
    auto_error=False, description="a token from POST /api/auth/login or `intern api token`"
)


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def actor_of(who: Principal) -> Actor:
    """The signed-in user as the author of an act or an audit line."""
    return Actor(who.username, who.role.label)


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def optional_principal(session: SessionDep, cred: Credentials) -> Principal | None:
    if cred is None:
        return None
    try:
        return principal_for(session, cred.credentials)
    except AuthError as exc:
        raise _unauthorized(str(exc)) from None


MaybePrincipal = Annotated[Principal | None, Depends(optional_principal)]


def reader(request: Request, who: MaybePrincipal) -> Principal | None:
    """Anyone with a token; nobody without one unless anonymous reads are on (loopback)."""
    if who is None and not request.app.state.settings.anonymous_read:
        raise _unauthorized("this server needs a token: sign in or pass Authorization: Bearer")
    return who


def require(role: Role) -> Callable[..., Principal]:
    """A dependency admitting ``role`` and the roles above it; a refusal is audited."""

    def check(request: Request, session: SessionDep, who: MaybePrincipal) -> Principal:
        if who is None:
            raise _unauthorized(
                f"{request.method} {request.url.path} needs a token with role {role.label} or above"
            )
        if who.role < role:
            audit(
                session,
                actor_of(who),
                f"{request.method} {request.url.path}",
                "",
                "forbidden",
                {"needed": role.label},
            )
            raise HTTPException(
                403, f"{who.username} is {who.role.label}; this needs {role.label} or above"
            )
        return who

    return check


Reader = Annotated[Principal | None, Depends(reader)]
Technician = Annotated[Principal, Depends(require(Role.TECHNICIAN))]
Supervisor = Annotated[Principal, Depends(require(Role.SUPERVISOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
