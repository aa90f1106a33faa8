"""``intern`` commands that run the line: ``run`` (bridge and orchestrator), ``worker``
(one robot's Celery worker, with the policy that drives it), ``plcsim`` and ``demo``.

This is where a robot worker is handed its policy source: ``robot`` never imports
``policy``, so the composition happens here, lazily, only in the command that needs it.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Annotated

import typer
from rich.console import Console

from cell.cli.common import (
    ConfigOpt,
    cell_errors,
    fail,
    line_config,
    services,
    settings,
    until_signal,
)
from cell.cli.logs import LogFormat, LogFormatOpt, level_number, setup_logging
from cell.settings import Settings

PolicyOpt = Annotated[
    str | None,
    typer.Option(
        help="expert, auto (shipped policy where one exists, else the scripted expert), "
        "tcp://HOST:PORT of a policy server, or ws://HOST:PORT (wss://) of a server speaking "
        "openpi's websocket protocol; default INTERN_POLICY or auto."
    ),
]


def _with_policy(cfg: Settings, policy: str | None) -> Settings:
    """``cfg`` with the policy source from the command line (else INTERN_POLICY),
    validated; a bad name is refused naming where it came from and what is accepted."""
    from policy.sources import parse_source

    try:
        parse_source(policy if policy is not None else cfg.policy)
    except ValueError as exc:
        where = "--policy" if policy is not None else "invalid settings: INTERN_POLICY"
        raise fail(f"{where}: {exc}") from None
    return cfg if policy is None else cfg.model_copy(update={"policy": policy})


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
    policy: PolicyOpt = None,
) -> None:
    """Run a simulated line end to end: PLC simulator, orchestrator, robot workers, record."""
    from cell.config import sample_config_path
    from cell.demo.runner import run_demo, run_shift

    cfg = _with_policy(settings(), policy)
    path = config or cfg.line_config or sample_config_path()
    line = line_config(cfg, path)
    with cell_errors():
        if shift:
            run_shift(cfg, line, path, hours=hours, speed=speed, console=Console())
        else:
            run_demo(cfg, line, path, parts=parts, speed=speed, console=Console())


def run(config: ConfigOpt = None, log_format: LogFormatOpt = LogFormat.TEXT) -> None:
    """Run the bridge and the orchestrator against the line config's PLC(s) until stopped.

    PostgreSQL need not answer: the line is served from the outbox until it does. Then the
    embedded database is brought to head; a configured one must be there already."""
    from cell.line.orchestrator import RunOptions, run_line

    cfg = settings()
    line = line_config(cfg, config)
    setup_logging(log_format)
    with cell_errors(), services(cfg) as svc:
        assert svc.database_url and svc.redis_url
        opts = RunOptions(
            svc.database_url,
            svc.redis_url,
            data_dir=cfg.data_dir.resolve(),
            job_timeout_s=cfg.job_timeout_s,
            migrate="postgres" in svc.embedded,  # a configured database is only checked
        )
        asyncio.run(until_signal(lambda stop: run_line(line, opts, stop)))


def worker(
    robot: Annotated[str, typer.Option("--robot", "-r", help="Robot id from the line config.")],
    config: ConfigOpt = None,
    loglevel: Annotated[
        str,
        typer.Option(help="Log level (Celery's and asyncua's own stay at WARNING unless DEBUG)."),
    ] = "INFO",
    policy: PolicyOpt = None,
    log_format: LogFormatOpt = LogFormat.TEXT,
) -> None:
    """Run one robot's Celery worker (queue robot.<ID>, concurrency 1)."""
    cfg = settings()
    line = line_config(cfg, config)
    try:
        line.robot(robot)
    except KeyError:
        known = ", ".join(r.id for r in line.robots)
        raise fail(f"robot {robot!r} is not in line {line.line} (robots: {known})") from None
    cfg = _with_policy(cfg, policy)
    if cfg.redis_url is None:
        raise fail("INTERN_REDIS_URL is not set: a worker must reach the cell's Redis")
    try:
        level_number(loglevel)
    except ValueError as exc:
        raise fail(f"--loglevel: {exc}") from None
    _start_worker(cfg, robot, loglevel, log_format)


def _start_worker(cfg: Settings, robot: str, loglevel: str, log_format: LogFormat) -> None:
    """Compose the worker: the policy source named by the settings drives the robot."""
    from policy.sources import policy_for_jobs
    from robot.worker import run_worker

    assert cfg.redis_url is not None
    run_worker(
        cfg.redis_url,
        robot,
        loglevel=loglevel,
        time_scale=cfg.time_scale,
        policies=policy_for_jobs(cfg.policy, token=cfg.policy_token),
        log_setup=partial(setup_logging, log_format, loglevel),
        quiet=log_format is LogFormat.JSON,
    )


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
    from cell.demo.plcsim import serve_plcsim

    cfg = settings()
    line = line_config(cfg, config)
    try:
        asyncio.run(
            until_signal(
                lambda stop: serve_plcsim(
                    line, host=host, port=port, speed=speed or None, parts=parts, stop=stop
                )
            )
        )
    except ValueError as exc:
        raise fail(str(exc)) from None


def register(app: typer.Typer) -> None:
    """Add the commands that run the line to ``app``."""
    app.command()(demo)
    app.command()(run)
    app.command()(worker)
    app.command()(plcsim)
