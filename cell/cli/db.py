"""``intern db``: the production record's schema."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from cell.cli.common import cell_errors, services, settings

db_app = typer.Typer(no_args_is_help=True, help="The production record's schema.")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Bring the database to the given Alembic revision (default: head)."""
    from cell.record.migrate import upgrade

    cfg = settings()
    with cell_errors(), services(cfg) as svc:
        assert svc.database_url
        upgrade(svc.database_url, revision)
        Console().print(f"database at revision {revision}: {svc.database_url}")
