"""A migrated database of its own for one bench run, on a server the bench may create and
drop databases on; dropped again by ``drop_db``."""

from __future__ import annotations

import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cell.record.migrate import upgrade


def fresh_db(server_url: str, prefix: str = "intern_bench") -> str:
    """The URL of a new database ``<prefix>_<random>`` at the schema's head."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    return url


def drop_db(server_url: str, url: str) -> None:
    """Drop the database of ``url`` (connections to it are ended)."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()
