"""Users of the API and the pages: roles, hashed passwords and tokens.

Passwords are stored as scrypt hashes; tokens are 32 random bytes shown once and stored
as their SHA-256. Roles are ordered: each one may do what the ones before it may.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from cell.errors import NotAuthorized
from cell.record.models import ROLES, ApiToken, ApiUser


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


@dataclass(frozen=True)
class Principal:
    username: str
    role: Role


_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(
        password.encode(), salt=bytes.fromhex(salt), dklen=32, n=int(n), r=int(r), p=int(p)
    )
    return hmac.compare_digest(got.hex(), digest)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(
    session: Session, username: str, role: Role, password: str | None = None
) -> ApiUser:
    """Add a user (commits); a user without a password signs in with tokens only."""
    if session.scalar(select(ApiUser.id).where(ApiUser.username == username)) is not None:
        raise AuthError(f"user {username!r} exists already")
    user = ApiUser(
        username=username,
        role=role.label,
        password_hash=hash_password(password) if password else None,
    )
    session.add(user)
    session.commit()
    return user


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


def login(session: Session, username: str, password: str, ttl: timedelta) -> tuple[str, Role]:
    user = session.scalar(select(ApiUser).where(ApiUser.username == username))
    # Hash even for an unknown user so that timing does not tell which names exist.
    ok = verify_password(password, user.password_hash if user else hash_password("x"))
    if user is None or user.disabled or not ok:
        raise AuthError("unknown user or wrong password")
    return issue_token(session, username, label="login", ttl=ttl), Role.parse(user.role)


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
