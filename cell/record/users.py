"""Users of the API and the pages: roles, hashed passwords and tokens.

Passwords are stored as scrypt hashes; tokens are 32 random bytes shown once and stored
as their SHA-256. Roles are ordered: each one may do what the ones before it may.
Sign-ins are audited, cost the same hash work whoever asks, and are refused for a while
after repeated failures (``LoginLimits``).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cell.errors import NotAuthorized
from cell.record.acts import Actor, audit
from cell.record.models import ROLES, ApiToken, ApiUser, AuditEntry


class Role(IntEnum):
    VIEWER = 0
    TECHNICIAN = 1
    ENGINEER = 2
    SUPERVISOR = 3
    ADMIN = 4

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown role {name!r} (roles: {', '.join(ROLES)})") from None

    @property
    def label(self) -> str:
        return self.name.lower()


class AuthError(NotAuthorized):
    """Credentials that do not identify an active user."""


class UserExists(AuthError):
    """A user of that name is on record already."""


@dataclass(frozen=True)
class Principal:
    username: str
    role: Role


_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
# Verified against when there is no real hash to check (unknown user, token-only user,
# disabled user), so that every sign-in costs one scrypt and its time tells nothing.
# The salt and digest are arbitrary: no password matches them.
_NO_PASSWORD = (_SCRYPT["n"], _SCRYPT["r"], _SCRYPT["p"], bytes(16), "00" * 32)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    """The one place a password is hashed (tests count the calls)."""
    return hashlib.scrypt(password.encode(), salt=salt, dklen=32, n=n, r=r, p=p)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored``. Costs one scrypt whatever ``stored`` is:
    None or malformed is checked against a hash that nothing matches."""
    real = _parse(stored)
    n, r, p, salt, digest = real or _NO_PASSWORD
    got = _scrypt(password, salt, n, r, p)
    return hmac.compare_digest(got.hex(), digest) and real is not None


def _parse(stored: str | None) -> tuple[int, int, int, bytes, str] | None:
    """(n, r, p, salt, digest hex) of a stored scrypt hash, or None if it is not one."""
    try:
        scheme, n, r, p, salt, digest = (stored or "").split("$")
        parsed = int(n), int(r), int(p), bytes.fromhex(salt), digest
    except ValueError:
        return None
    return parsed if scheme == "scrypt" else None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(
    session: Session, username: str, role: Role, password: str | None = None
) -> ApiUser:
    """Add a user (commits); a user without a password signs in with tokens only."""
    if session.scalar(select(ApiUser.id).where(ApiUser.username == username)) is not None:
        raise UserExists(f"user {username!r} exists already")
    user = ApiUser(
        username=username,
        role=role.label,
        password_hash=hash_password(password) if password else None,
    )
    session.add(user)
    session.commit()
    return user


def add_password(session: Session, username: str, password: str) -> Role:
    """Give an API-only user (one without a password) a password (commits); its role.

    A user who has a password keeps it: ``AuthError`` (changing a password is not this).
    """
    user = session.scalar(select(ApiUser).where(ApiUser.username == username))
    if user is None or user.disabled:
        raise AuthError(f"no active user {username!r}")
    if user.password_hash is not None:
        raise AuthError(f"user {username!r} exists already and has a password")
    user.password_hash = hash_password(password)
    session.commit()
    return Role.parse(user.role)


def issue_token(
    session: Session, username: str, *, label: str = "", ttl: timedelta | None = None
) -> str:
    """A new token for ``username`` (commits); only its digest is stored."""
    user = session.scalar(select(ApiUser).where(ApiUser.username == username))
    if user is None or user.disabled:
        raise AuthError(f"no active user {username!r}")
    token = secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            user_id=user.id,
            token_hash=token_digest(token),
            label=label,
            expires_at=datetime.now(UTC) + ttl if ttl else None,
        )
    )
    session.commit()
    return token


@dataclass(frozen=True)
class LoginLimits:
    """How many failed sign-ins are allowed over ``window_s`` for one user name (known or
    not) and from one client address before further tries are refused until the oldest
    counted failure is ``window_s`` old. Failures are read from the audit log, so every
    API process sees the same count and a restart forgets nothing."""

    window_s: float = 900.0
    per_user: int = 5
    per_client: int = 20


class LoginLocked(NotAuthorized):
    """Too many failed sign-ins lately; ``retry_after_s`` says when to try again."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


LOGIN = "auth.login"


def login(
    session: Session,
    username: str,
    password: str,
    ttl: timedelta,
    *,
    client: str = "unknown",
    limits: LoginLimits | None = None,
) -> tuple[str, Role]:
    """A token for ``username`` if ``password`` is right, else ``AuthError``; audited.

    Every attempt costs one scrypt (unknown, token-only, disabled and real users alike),
    so its time does not tell which names exist. After too many failures for the name or
    from ``client`` (``LoginLimits``) the attempt is refused with ``LoginLocked``.
    """
    limits = limits or LoginLimits()
    actor = Actor(client[:80], "anonymous")
    wait_s = _locked_for(session, username, actor.name, limits)
    if wait_s is not None:
        audit(session, actor, LOGIN, username, "locked", {"retry_after_s": wait_s})
        raise LoginLocked(
            f"too many failed sign-ins for {username!r} or from this address; "
            f"try again in {wait_s} s",
            wait_s,
        )
    user = session.scalar(select(ApiUser).where(ApiUser.username == username))
    ok = verify_password(password, user.password_hash if user else None)
    if user is None or user.disabled or not ok:
        why = "unknown user" if user is None else "disabled" if user.disabled else "password"
        if user is not None and user.password_hash is None:
            why = "token-only user"
        audit(session, actor, LOGIN, username, "refused", {"reason": why})
        raise AuthError("unknown user or wrong password")
    token = issue_token(session, username, label="login", ttl=ttl)
    audit(session, actor, LOGIN, username, "done", {"role": user.role})
    return token, Role.parse(user.role)


def _locked_for(session: Session, username: str, client: str, limits: LoginLimits) -> int | None:
    """Seconds until a sign-in for ``username`` from ``client`` is allowed again, or None."""
    since = func.now() - timedelta(seconds=limits.window_s)
    waits = []
    for column, value, limit in (
        (AuditEntry.target, username, limits.per_user),
        (AuditEntry.actor, client, limits.per_client),
    ):
        failures = session.execute(
            select(AuditEntry.at, func.now())
            .where(
                AuditEntry.action == LOGIN,
                AuditEntry.outcome == "refused",
                column == value,
                AuditEntry.at > since,
            )
            .order_by(AuditEntry.at.desc())
            .limit(limit)
        ).all()
        if len(failures) >= limit:
            # Allowed again once the oldest of the last ``limit`` failures leaves the window.
            at, now = failures[-1]
            left = (at - now).total_seconds() + limits.window_s
            waits.append(max(1, math.ceil(left)))
    return max(waits) if waits else None


def principal_for(session: Session, token: str) -> Principal:
    row = session.execute(
        select(
            ApiUser.username,
            ApiUser.role,
            ApiToken.expires_at,
            ApiToken.revoked_at,
            ApiUser.disabled,
        )
        .join(ApiToken, ApiToken.user_id == ApiUser.id)
        .where(ApiToken.token_hash == token_digest(token))
    ).one_or_none()
    if row is None:
        raise AuthError("unknown token")
    username, role, expires, revoked, disabled = row
    if revoked is not None or disabled:
        raise AuthError("token revoked")
    if expires is not None and expires <= datetime.now(UTC):
        raise AuthError("token expired; sign in again")
    return Principal(username, Role.parse(role))
