"""What every ``intern`` command shares: the one mapping of the cell's errors to messages
and exit codes, settings, the line config, the servers, and a session on the record.

Errors at this edge are a sentence for a person on stderr: exit code 1 for an act that
was refused, 2 for anything else a person can correct. No traceback for those.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from cell.cli.output import Format
from cell.errors import CellError, Refused
from cell.services import Services
from cell.settings import Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from cell.config import LineConfig

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Line config YAML (default: INTERN_LINE_CONFIG, else the sample die-casting line).",
    ),
]
StartOpt = Annotated[
    datetime | None,
    typer.Option(help="Window start (UTC unless an offset is given), e.g. 2026-03-01T06:00."),
]
EndOpt = Annotated[datetime | None, typer.Option(help="Window end (default: now).")]
DaysOpt = Annotated[float, typer.Option(help="Window length when --start is not given.")]
StationOpt = Annotated[str | None, typer.Option(help="Only this station.")]
AuthorOpt = Annotated[str, typer.Option(help="Who does this (recorded with the act).")]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="table, csv or json.")]

# Commands that read the record need no broker: a placeholder URL keeps Services from
# starting one.
_NO_BROKER = "redis://127.0.0.1:6379/15"


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` for a person and return the exit to raise."""
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def exit_for(exc: CellError) -> typer.Exit:
    """The one mapping of the cell's errors at this edge: a refused act exits 1 with
    "refused: ..."; anything else a person can correct exits 2 with its message."""
    if isinstance(exc, Refused):
        return fail(f"refused: {exc}", 1)
    return fail(str(exc))


def invalid(exc: ValidationError) -> typer.Exit:
    """A validation error as options a person can correct."""
    parts = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"])
        parts.append(f"--{where.replace('_', '-')}: {e['msg']}" if where else e["msg"])
    return fail("; ".join(parts))


@contextmanager
def cell_errors() -> Iterator[None]:
    """Turn the cell's errors (and invalid options) raised inside into exits."""
    try:
        yield
    except ValidationError as exc:
        raise invalid(exc) from None
    except CellError as exc:
        raise exit_for(exc) from None


def settings() -> Settings:
    """The process settings from the environment."""
    with cell_errors():
        return load_settings()


def line_config(cfg: Settings, config: Path | None) -> LineConfig:
    """The line config named on the command line, in the settings, or the sample line."""
    from cell.config import load_line_config, sample_config_path

    with cell_errors():
        return load_line_config(config or cfg.line_config or sample_config_path())


def services(cfg: Settings) -> Services:
    """The servers a command uses: configured ones, or embedded ones it starts."""
    return Services(cfg.data_dir.resolve(), cfg.database_url, cfg.redis_url)


@contextmanager
def database(broker: bool = False) -> Iterator[tuple[Session, Services]]:
    """A session on the record (embedded PostgreSQL when none is configured, migrated);
    the cell's errors raised inside become messages for a person."""
    from sqlalchemy.orm import Session

    from cell.record.engine import make_engine
    from cell.record.migrate import upgrade

    cfg = settings()
    with cell_errors():
        redis_url = cfg.redis_url if broker else cfg.redis_url or _NO_BROKER
        with Services(cfg.data_dir.resolve(), cfg.database_url, redis_url) as svc:
            assert svc.database_url
            if "postgres" in svc.embedded:
                upgrade(svc.database_url)
            engine = make_engine(svc.database_url, pool_size=1)
            try:
                with Session(engine, expire_on_commit=False) as session:
                    yield session, svc
            finally:
                engine.dispose()


async def until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)``; SIGINT and SIGTERM set ``stop``."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await main(stop)
