"""Run Alembic programmatically: ``upgrade(url)`` brings a database to the head revision,
``schema_problem(url)`` says why a database is not there."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

import migrations


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the shipped ``migrations`` package and ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    # ConfigParser interpolation would choke on '%' in URLs.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def schema_problem(url: str) -> str | None:
    """Why the database at ``url`` is not at this release's head revision, None if it
    is; what cannot reach it raises (``sqlalchemy.exc.OperationalError``)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()
    heads = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    if current == heads:
        return None
    now = ", ".join(sorted(current)) or "none (no schema yet)"
    where = engine.url.render_as_string(hide_password=True)
    return (
        f"the database {where} is at revision {now}; this release needs {', '.join(sorted(heads))}"
    )
