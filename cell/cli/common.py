"""What every ``intern`` command shares: the one mapping of the cell's errors to messages
and exit codes, settings, the line config, times and names given on the command line,
the servers, a session on the record, and stopping on a signal.

Errors at this edge are a sentence for a person on stderr: exit code 1 for an act that
was refused, 2 for anything else a person can correct. No traceback for those.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from pydantic import ValidationError
from rich.console import Console

from cell.cli.output import Format
from cell.errors import CellError, Refused
from cell.services import Services
from mes_bridge.errors import BridgeError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

    from cell.config import LineConfig
    from cell.insight.params import WindowParams
    from cell.settings import Settings

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Line config YAML (default: INTERN_LINE_CONFIG, else the sample die-casting line).",
    ),
]
# One syntax for every time on the command line: ISO 8601, read in the line's time zone
# (the line config's ``timezone``) unless it carries an offset.
StartOpt = Annotated[
    str | None,
    typer.Option(
        help="Window start, ISO 8601: 2026-03-01T06:00 (the line's time zone) "
        "or 2026-03-01T06:00+01:00.",
        show_default=False,
    ),
]
EndOpt = Annotated[
    str | None, typer.Option(help="Window end, as --start (default: now).", show_default=False)
]
DaysOpt = Annotated[float, typer.Option(help="Window length when --start is not given.")]
StationOpt = Annotated[str | None, typer.Option(help="Only this station.", show_default=False)]
AuthorOpt = Annotated[str, typer.Option(help="Who does this (recorded with the act).")]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="table, csv or json.")]

NameKind = Literal["station", "robot", "task"]

# Commands that read the record need no broker: a placeholder URL keeps Services from
# starting one.
_NO_BROKER = "redis://127.0.0.1:6379/15"


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` for a person and return the exit to raise."""
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {message}", highlight=False)
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
    """Turn the cell's errors, the bridge's (an unreachable PLC, an untrusted certificate)
    and invalid options raised inside into exits."""
    try:
        yield
    except ValidationError as exc:
        raise invalid(exc) from None
    except CellError as exc:
        raise exit_for(exc) from None
    except BridgeError as exc:
        raise fail(str(exc)) from None


def settings() -> Settings:
    """The process settings from the environment."""
    from cell.settings import load_settings  # pydantic-settings: only when a command runs

    with cell_errors():
        return load_settings()


def line_config(cfg: Settings, config: Path | None) -> LineConfig:
    """The line config named on the command line, in the settings, or the sample line."""
    from cell.config import load_line_config, sample_config_path

    with cell_errors():
        return load_line_config(config or cfg.line_config or sample_config_path())


def the_line(config: Path | None) -> LineConfig:
    """The line config of ``--config``, else the settings', else the sample line."""
    return line_config(settings(), config)


def moment(option: str, text: str | None, line: LineConfig) -> datetime | None:
    """``text`` given to ``option`` as an aware time (local time of ``line`` without an
    offset); a bad one exits 2 naming the option."""
    from cell.insight.params import parse_time

    if text is None:
        return None
    try:
        return parse_time(text, line.timezone)
    except ValueError as exc:
        raise fail(f"{option}: {exc}") from None


def require_known(kind: str, name: str | None, known: Iterable[str]) -> None:
    """Exit 2 when ``name`` (a station, robot, task ...) is not one of ``known``, listing
    them, instead of answering an empty result for a typo."""
    names = sorted(set(known))
    if name is not None and name not in names:
        listed = ", ".join(names) if names else "none yet"
        raise fail(f"unknown {kind} {name!r}; known {kind}s: {listed}")


def known_names(session: Session, line: LineConfig, kind: NameKind) -> set[str]:
    """The stations, robots or tasks of ``line`` and of the record (a line run with
    another config, or a generated history, has its own)."""
    from sqlalchemy import select

    from cell.record import models as m
    from robot.jobs import Task

    if kind == "station":
        return {s.id for s in line.stations} | set(session.scalars(select(m.Station.id)))
    if kind == "robot":
        return {r.id for r in line.robots} | set(session.scalars(select(m.Robot.id)))
    return {t.value for t in Task} | set(session.scalars(select(m.Recipe.task).distinct()))


def window(
    line: LineConfig, start: str | None, end: str | None, days: float, station: str | None
) -> WindowParams:
    """The query window of ``--start``/``--end``/``--days`` (times in the line's zone
    without an offset); a bad one exits 2 naming the option."""
    from cell.insight.params import WindowParams

    try:
        return WindowParams(
            start=moment("--start", start, line),
            end=moment("--end", end, line),
            days=days,
            station=station,
        )
    except ValidationError as exc:
        raise invalid(exc) from None


def check_names(
    session: Session,
    line: LineConfig,
    *,
    station: str | None = None,
    robot: str | None = None,
    task: str | None = None,
) -> None:
    """Exit 2 for a station, robot or task given that neither the line nor the record
    knows."""
    given: tuple[tuple[NameKind, str | None], ...] = (
        ("station", station),
        ("robot", robot),
        ("task", task),
    )
    for kind, name in given:
        if name is not None:
            require_known(kind, name, known_names(session, line, kind))


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
                if "postgres" not in svc.embedded:
                    check_schema(engine)
                with Session(engine, expire_on_commit=False) as session:
                    yield session, svc
            finally:
                engine.dispose()


def check_schema(engine: Engine) -> None:
    """Exit 2 with what to do when a configured database cannot be reached, has no schema
    yet, or is at another revision than this release's (a plant migrates on purpose, with
    ``intern db upgrade``; only the embedded database is migrated on the fly)."""
    from sqlalchemy.exc import OperationalError

    from cell.record.migrate import schema_problem

    where = engine.url.render_as_string(hide_password=True)
    try:
        problem = schema_problem(engine.url.render_as_string(hide_password=False))
    except OperationalError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise fail(f"cannot reach the database {where}: {reason}") from None
    if problem is not None:
        raise fail(f"{problem}: run `intern db upgrade`")


# The signals that end a command: Ctrl-C, ``kill`` and a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class Stopping:
    """The handler of SIGTERM and SIGHUP while a command runs; ``signum`` says which
    one ended it, if one did."""

    signum: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        on_ctrl_c = signal.getsignal(signal.SIGINT)
        if callable(on_ctrl_c) and on_ctrl_c is not signal.default_int_handler:
            # Inside ``asyncio.run``, whose Ctrl-C handler cancels the main task so that
            # the loop unwinds in order; a second signal interrupts at once.
            on_ctrl_c(signum, frame)
            return
        raise SystemExit(128 + signum)


@contextmanager
def stop_on_signals() -> Iterator[Stopping]:
    """SIGTERM and SIGHUP end the command the way Ctrl-C does: by an exception, so that
    every ``with`` block unwinds and the embedded servers a command started are stopped,
    instead of the process dying on the spot and leaving them running. Commands that
    serve until stopped (``run``, ``api serve``) take the signal themselves, shut down
    gracefully, unwind and exit 0; others exit 128 + the signal's number."""
    stopping = Stopping()
    previous = {sig: signal.signal(sig, stopping) for sig in STOP_SIGNALS[1:]}
    try:
        yield stopping
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)``; SIGINT, SIGTERM and SIGHUP set ``stop``. The handlers before
    are back when it returns, so a signal during the unwinding still unwinds."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        await main(stop)
    finally:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
