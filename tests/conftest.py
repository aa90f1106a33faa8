"""Shared fixtures: real PostgreSQL and Redis.

``INTERN_TEST_DATABASE_URL`` / ``INTERN_TEST_REDIS_URL`` name servers to use (CI sets them
to the machine's services); without them the embedded servers of ``cell.services`` are
started for the test session, so the suite runs on a machine with nothing installed.
Each test session works in databases of its own, created here and dropped at the end.
"""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from cell.record.migrate import upgrade
from cell.services import EmbeddedPostgres, EmbeddedRedis


@pytest.fixture(scope="session", autouse=True)
def episode_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the robot workers the tests start keep job episodes: a temporary folder, not
    the checkout's data dir (a test that cares sets ``INTERN_EPISODE_DIR`` itself)."""
    given = os.environ.get("INTERN_EPISODE_DIR")
    if given:
        yield Path(given)
        return
    folder = tmp_path_factory.mktemp("episodes")
    os.environ["INTERN_EPISODE_DIR"] = str(folder)
    yield folder
    os.environ.pop("INTERN_EPISODE_DIR", None)


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL server (its maintenance database)."""
    url = os.environ.get("INTERN_TEST_DATABASE_URL")
    if url:
        yield url.replace("postgresql://", "postgresql+psycopg://", 1)
        return
    pg = EmbeddedPostgres(tmp_path_factory.mktemp("embedded-pg"))
    yield pg.start()
    pg.stop()


@pytest.fixture(scope="session")
def make_database(pg_server_url: str) -> Iterator[Callable[[], str]]:
    """Factory: a new, migrated database on the test server; all dropped at session end."""
    # A fresh connection each time: a long test session must not depend on one socket.
    admin = create_engine(pg_server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    created: list[str] = []

    def _make() -> str:
        name = f"intern_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        url = make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        return url

    yield _make
    try:
        with admin.connect() as c:
            for name in created:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except OperationalError as exc:
        # An embedded server may already be shutting down with the session; its data
        # folder is temporary. A real server's leftover databases are named for cleanup.
        warnings.warn(f"test databases not dropped ({', '.join(created)}): {exc}", stacklevel=1)
    admin.dispose()


@pytest.fixture(scope="session")
def database_url(make_database: Callable[[], str]) -> str:
    """One migrated database shared by the tests that roll back their work."""
    return make_database()


@contextlib.contextmanager
def rolled_back_session(url: str) -> Iterator[Session]:
    """A session inside a transaction that is rolled back at the end.

    Code under test may commit: commits become savepoints of the outer transaction.
    """
    engine = create_engine(url)
    conn = engine.connect()
    outer = conn.begin()
    session = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        conn.close()
        engine.dispose()


@pytest.fixture
def db_session(database_url: str) -> Iterator[Session]:
    """A session on the shared test database; whatever the test writes is rolled back."""
    with rolled_back_session(database_url) as session:
        yield session


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("INTERN_TEST_REDIS_URL")
    if url:
        yield url
        return
    r = EmbeddedRedis(tmp_path_factory.mktemp("embedded-redis"))
    yield r.start()
    r.stop()


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """A Redis database emptied before the test: number 9, or INTERN_TEST_REDIS_DB (so
    that two test runs on one server keep out of each other's way)."""
    url = make_url_db(redis_server_url, int(os.environ.get("INTERN_TEST_REDIS_DB", "9")))
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


def make_url_db(url: str, db: int) -> str:
    base = url.rsplit("/", 1)[0] if url.count("/") > 2 else url
    return f"{base}/{db}"
