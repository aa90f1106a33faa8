"""The ``intern`` command line. Errors at this edge are printed for a person, exit code 2."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cell.cli_analytics import register as register_analytics
from cell.config import LineConfig, LineConfigError, load_line_config, sample_config_path
from cell.services import ServiceError, Services
from cell.settings import Settings, SettingsError, load_settings
from mes_bridge.cli import certs_app
from policy.cli import policy_app
from robot.cli import sim_app

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Humanoid robot cells on a production line."
)
db_app = typer.Typer(no_args_is_help=True, help="The production record's schema.")
app.add_typer(db_app, name="db")
report_app = typer.Typer(no_args_is_help=True, help="Reports from the production record.")
app.add_typer(report_app, name="report")
app.add_typer(sim_app, name="sim")
app.add_typer(policy_app, name="policy")
app.add_typer(certs_app(), name="certs")

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Line config YAML (default: INTERN_LINE_CONFIG, else the sample die-casting line).",
    ),
]


def _fail(message: str) -> typer.Exit:
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(2)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise _fail(str(exc)) from None


def _line(settings: Settings, config: Path | None) -> LineConfig:
    path = config or settings.line_config or sample_config_path()
    try:
        return load_line_config(path)
    except LineConfigError as exc:
        raise _fail(str(exc)) from None


def _with_policy(settings: Settings, policy: str) -> Settings:
    """``settings`` with the policy source from the command line, validated."""
    from robot.sources import parse_source

    try:
        parse_source(policy)
    except ValueError as exc:
        raise _fail(f"--policy: {exc}") from None
    return settings.model_copy(update={"policy": policy})


def _services(settings: Settings) -> Services:
    return Services(settings.data_dir.resolve(), settings.database_url, settings.redis_url)


@app.command()
def demo(
    parts: Annotated[int, typer.Option(min=1, max=100000, help="Parts per station.")] = 40,
    speed: Annotated[
        float,
        typer.Option(
            min=1.0,
            max=1000.0,
            help="Simulated seconds per wall second (the line's 76 s takt runs faster).",
        ),
    ] = 60.0,
    shift: Annotated[
        bool,
        typer.Option(
            "--shift",
            help="Run a whole simulated shift with a technician and a supervisor, then its report.",
        ),
    ] = False,
    hours: Annotated[int, typer.Option(min=1, max=12, help="Shift length with --shift.")] = 3,
    config: ConfigOpt = None,
    policy: Annotated[
        str | None,
        typer.Option(
            help="What the robots run: expert, auto (the shipped policies) or tcp://HOST:PORT; "
            "default INTERN_POLICY or auto."
        ),
    ] = None,
) -> None:
    """Run a simulated line end to end: PLC simulator, orchestrator, robot workers, record."""
    from cell.demo import run_demo, run_shift

    settings = _settings()
    if policy is not None:
        settings = _with_policy(settings, policy)
    path = config or settings.line_config or sample_config_path()
    line = _line(settings, path)
    try:
        if shift:
            run_shift(settings, line, path, hours=hours, speed=speed, console=Console())
        else:
            run_demo(settings, line, path, parts=parts, speed=speed, console=Console())
    except ServiceError as exc:
        raise _fail(str(exc)) from None


@app.command()
def run(config: ConfigOpt = None) -> None:
    """Run the bridge and the orchestrator against the line config's PLC(s) until stopped."""
    from cell.db.migrate import upgrade
    from cell.orchestrator import RunOptions, run_line

    settings = _settings()
    line = _line(settings, config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        with _services(settings) as svc:
            assert svc.database_url and svc.redis_url
            upgrade(svc.database_url)
            opts = RunOptions(
                svc.database_url,
                svc.redis_url,
                data_dir=settings.data_dir.resolve(),
                job_timeout_s=settings.job_timeout_s,
            )
            asyncio.run(_until_signal(lambda stop: run_line(line, opts, stop)))
    except ServiceError as exc:
        raise _fail(str(exc)) from None


async def _until_signal(main) -> None:  # type: ignore[no-untyped-def]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await main(stop)


@app.command()
def worker(
    robot: Annotated[str, typer.Option("--robot", "-r", help="Robot id from the line config.")],
    config: ConfigOpt = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    policy: Annotated[
        str | None,
        typer.Option(
            help="expert, auto (shipped policy where one exists, else the scripted expert), or "
            "tcp://HOST:PORT of a policy server; default INTERN_POLICY or auto."
        ),
    ] = None,
) -> None:
    """Run one robot's Celery worker (queue robot.<ID>, concurrency 1)."""
    from robot.worker import run_worker

    settings = _settings()
    line = _line(settings, config)
    try:
        line.robot(robot)
    except KeyError:
        known = ", ".join(r.id for r in line.robots)
        raise _fail(f"robot {robot!r} is not in line {line.line} (robots: {known})") from None
    if policy is not None:
        settings = _with_policy(settings, policy)
    if settings.redis_url is None:
        raise _fail("INTERN_REDIS_URL is not set: a worker must reach the cell's Redis")
    run_worker(
        settings.redis_url,
        robot,
        loglevel=loglevel,
        time_scale=settings.time_scale,
        policy=settings.policy,
        policy_token=settings.policy_token,
    )


@app.command()
def plcsim(
    config: ConfigOpt = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on (a plant network needs an explicit one).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: the config's endpoint).")] = 0,
    speed: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Run the recipes' takt this many times faster; 0: next part as soon as possible.",
        ),
    ] = 1.0,
    parts: Annotated[int, typer.Option(help="Parts per station, 0 for no limit.")] = 0,
) -> None:
    """Run the line PLC simulator (an OPC UA server) for the line config's stations."""
    from cell.plcsim_cli import serve_plcsim

    settings = _settings()
    line = _line(settings, config)
    try:
        asyncio.run(
            _until_signal(
                lambda stop: serve_plcsim(
                    line, host=host, port=port, speed=speed or None, parts=parts, stop=stop
                )
            )
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None


@report_app.command("shift")
def report_shift(
    start: Annotated[
        str | None, typer.Option(help="Shift start, ISO 8601 (default: the latest recorded shift).")
    ] = None,
    hours: Annotated[float, typer.Option(min=0.1, max=24.0, help="Length from --start.")] = 8.0,
) -> None:
    """Per station: parts, first-pass and final yield, NOK Pareto, cycle time against takt,
    availability, interventions, mean time to acknowledge and to repair."""
    from datetime import datetime, timedelta

    from sqlalchemy import select

    from cell.analytics.report import shift_report
    from cell.db.engine import make_engine, make_sessionmaker
    from cell.db.models_analytics import Shift
    from cell.report_view import print_shift_report

    settings = _settings()
    with _services(settings) as svc:
        assert svc.database_url
        engine = make_engine(svc.database_url)
        try:
            with make_sessionmaker(engine)() as s:
                if start is None:
                    row = s.scalars(select(Shift).order_by(Shift.starts_at.desc())).first()
                    if row is None:
                        raise _fail("no shift on record; give --start")
                    begin, end = row.starts_at, row.ends_at
                else:
                    try:
                        begin = datetime.fromisoformat(start)
                    except ValueError:
                        raise _fail(
                            f"--start {start!r} is not an ISO 8601 time "
                            "(e.g. 2026-11-23T06:00+00:00)"
                        ) from None
                    if begin.tzinfo is None:
                        raise _fail("--start needs a UTC offset, e.g. 2026-11-23T06:00+00:00")
                    end = begin + timedelta(hours=hours)
                print_shift_report(Console(), shift_report(s, begin, end))
        finally:
            engine.dispose()


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Bring the database to the given Alembic revision (default: head)."""
    from cell.db.migrate import upgrade

    settings = _settings()
    try:
        with _services(settings) as svc:
            assert svc.database_url
            upgrade(svc.database_url, revision)
            Console().print(f"database at revision {revision}: {svc.database_url}")
    except ServiceError as exc:
        raise _fail(str(exc)) from None


register_analytics(app)


def main() -> None:
    """Entry point of the ``intern`` script."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
