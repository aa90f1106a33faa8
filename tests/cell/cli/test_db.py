"""``intern db shell``: psql, or the built-in SQL prompt, on the configured database or on
the embedded one, which it starts and stops."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from tests.cell.test_services import INTERN, _env, _servers_of, private_folder


def _shell(env: dict[str, str], sql: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*INTERN, "db", "shell", *args],
        input=sql,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def folder() -> Iterator[Path]:
    with private_folder() as path:
        yield path


@pytest.fixture
def configured(make_database: Callable[[], str], tmp_path: Path) -> dict[str, str]:
    """The environment of a command on a migrated database of the test server."""
    env = _env(tmp_path / "data", tmp_path / "home")
    return env | {"INTERN_DATABASE_URL": make_database()}


def test_psql_runs_on_the_configured_database(configured: dict[str, str]) -> None:
    res = _shell(configured, "SELECT count(*) AS revisions FROM alembic_version;\n")
    assert res.returncode == 0, res.stderr
    assert "revisions" in res.stdout and "(1 row)" in res.stdout
    # The password never goes on psql's command line; the URL names no driver.
    assert "psycopg" not in res.stderr


def test_the_built_in_prompt_runs_sql_lines_and_reports_errors(configured: dict[str, str]) -> None:
    sql = "SELECT 6 * 7 AS answer,\n 'ST10' AS station_id;\n\\dt\n"
    res = _shell(configured, sql, "--python")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert any(line.split() == ["answer", "station_id"] for line in lines)  # names as in SQL
    assert any(line.split() == ["42", "ST10"] for line in lines)
    assert "alembic_version" in res.stdout and "jobs" in res.stdout  # \dt
    bad = _shell(configured, "SELECT nope;\n", "--python")
    assert bad.returncode == 1 and 'column "nope" does not exist' in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr


def test_an_unmigrated_database_is_refused_with_what_to_do(
    configured: dict[str, str], pg_server_url: str
) -> None:
    name = f"intern_test_empty_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
        res = _shell(configured | {"INTERN_DATABASE_URL": url}, "SELECT 1;\n")
        assert res.returncode == 2 and "no schema yet" in res.stderr
        assert "run `intern db upgrade`" in res.stderr and "Traceback" not in res.stderr
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.slow
def test_the_embedded_server_runs_for_the_shell_and_stops_after(folder: Path) -> None:
    data = folder / "data"
    env = _env(data, folder / "home")
    res = _shell(env, "SELECT count(*) AS stations FROM stations;\n")
    assert res.returncode == 0, res.stderr
    assert "stations" in res.stdout and "(1 row)" in res.stdout
    assert _servers_of(data) == []

    # SIGTERM while psql waits for input: psql ends, then the server it used.
    proc = subprocess.Popen([*INTERN, "db", "shell"], env=env, stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not any(p.name().startswith("postgres") for p in _servers_of(data)):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(1.0)  # psql connected and waiting
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _servers_of(data) == []
