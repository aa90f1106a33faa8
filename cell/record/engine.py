"""Engines and sessions, built by the caller from settings (never at import time)."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """A psycopg 3 engine; ``pool_pre_ping`` so a restarted server does not break the pool."""
    return create_engine(url, pool_size=pool_size, pool_pre_ping=True, future=True)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
