"""``intern`` commands that run the line: ``run`` (bridge and orchestrator), ``worker``
(one robot's Celery worker, with the policy that drives it), ``plcsim``, ``demo``, and
``line status`` (which orchestrator process serves each station).

This is where a robot worker is handed its policy source: ``robot`` never imports
``policy``, so the composition happens here, lazily, only in the command that needs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from cell.cli.common import (
    ConfigOpt,
    FormatOpt,
    cell_errors,
    database,
    fail,
    line_config,
    services,
    settings,
    the_line,
    until_signal,
)
from cell.cli.logs import LogFormat, LogFormatOpt, level_number, setup_logging
from cell.cli.output import Format, emit
from cell.settings import LEASE_S_MAX, LEASE_S_MIN, Settings

if TYPE_CHECKING:
    from cell.config import LineConfig
    from cell.record.leases import Lease

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


LeasesOpt = Annotated[
    bool | None,
    typer.Option(
        "--leases/--no-leases",
        help="Serve only the stations whose lease this process holds, so that several "
        "processes (on several hosts) share the line; needs INTERN_DATABASE_URL. "
        "Default INTERN_LEASES or off.",
        show_default=False,
    ),
]
LeaseSecondsOpt = Annotated[
    float | None,
    typer.Option(
        "--lease-s",
        min=LEASE_S_MIN,
        max=LEASE_S_MAX,
        help="Seconds a station lease lasts unless renewed (renewed every fifth of it); "
        "default INTERN_LEASE_S or 5.",
        show_default=False,
    ),
]


def run(
    config: ConfigOpt = None,
    log_format: LogFormatOpt = LogFormat.TEXT,
    leases: LeasesOpt = None,
    lease_s: LeaseSecondsOpt = None,
) -> None:
    """Run the bridge and the orchestrator against the line config's PLC(s) until stopped.

    PostgreSQL need not answer: the line is served from the outbox until it does. Then the
    embedded database is brought to head; a configured one must be there already. With
    --leases the process serves only the stations it holds a lease for, and needs
    PostgreSQL to serve at all (see ``intern line status``)."""
    from cell.line.orchestrator import RunOptions, run_line

    cfg = settings()
    line = line_config(cfg, config)
    use_leases = cfg.leases if leases is None else leases
    if use_leases and cfg.database_url is None:
        where = "--leases" if leases else "INTERN_LEASES"
        raise fail(
            f"{where}: station leases need the PostgreSQL that every orchestrator of the "
            "line shares: set INTERN_DATABASE_URL"
        )
    setup_logging(log_format)
    with cell_errors(), services(cfg) as svc:
        assert svc.database_url and svc.redis_url
        opts = RunOptions(
            svc.database_url,
            svc.redis_url,
            data_dir=cfg.data_dir.resolve(),
            job_timeout_s=cfg.job_timeout_s,
            migrate="postgres" in svc.embedded,  # a configured database is only checked
            leases=use_leases,
            lease_s=cfg.lease_s if lease_s is None else lease_s,
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
    """Compose the worker: the policy source named by the settings drives the robot, and
    each job's episode is kept in the settings' episode store."""
    from policy.sources import policy_for_jobs
    from robot.worker import run_worker

    assert cfg.redis_url is not None
    run_worker(
        cfg.redis_url,
        robot,
        loglevel=loglevel,
        time_scale=cfg.time_scale,
        policies=policy_for_jobs(
            cfg.policy, token=cfg.policy_token, checkpoints=[cfg.checkpoint_store()]
        ),
        log_setup=partial(setup_logging, log_format, loglevel),
        quiet=log_format is LogFormat.JSON,
        episode_dir=cfg.episode_store(),
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


def status(config: ConfigOpt = None, fmt: FormatOpt = Format.TABLE) -> None:
    """Which orchestrator process serves each station of the line (station leases).

    For each station: the process holding its lease (host:pid:id), the fencing number
    (it grows at every change of owner), when the lease was last renewed and when it
    expires, by PostgreSQL's clock."""
    from cell.record.leases import station_leases

    line = the_line(config)
    with database() as (s, _):
        leases = station_leases(s)
    console = Console()
    if fmt is Format.TABLE:
        emit(status_rows(line, leases), fmt, console, title=f"Line {line.line}: stations served")
        if not leases:
            console.print(
                "no station lease on record: the line is served without leases "
                "(intern run without --leases), or not at all",
                highlight=False,
            )
        return
    rows = lease_rows(line, leases)
    emit(rows, fmt, console, document=rows)


def _stations(line: LineConfig, leases: Sequence[Lease]) -> list[tuple[str, Lease | None]]:
    """The line's stations in config order, then any other station with a lease."""
    by_id = {lease.station_id: lease for lease in leases}
    ids = [st.id for st in line.stations]
    ids += sorted(set(by_id) - set(ids))
    return [(sid, by_id.get(sid)) for sid in ids]


def status_rows(line: LineConfig, leases: Sequence[Lease]) -> list[dict[str, Any]]:
    """One row per station for a person: who serves it and how fresh the lease is."""
    rows: list[dict[str, Any]] = []
    for sid, lease in _stations(line, leases):
        if lease is None:
            rows.append({"station_id": sid, "served_by": "nobody (no lease)", "fencing": None})
            continue
        rows.append(
            {
                "station_id": sid,
                "served_by": f"nobody (last: {lease.owner})" if lease.expired else lease.owner,
                "fencing": lease.fencing,
                "renewed": f"{_span(lease.renewed_ago_s)} ago",
                "expires": f"expired {_span(-lease.expires_in_s)} ago"
                if lease.expired
                else f"in {_span(lease.expires_in_s)}",
            }
        )
    return rows


def lease_rows(line: LineConfig, leases: Sequence[Lease]) -> list[dict[str, Any]]:
    """One row per station for a script: the lease as recorded, ``served`` whether it
    is live, and seconds since renewal and until expiry (negative once expired)."""
    return [
        {
            "station_id": sid,
            "served": lease is not None and not lease.expired,
            "owner": lease.owner if lease else None,
            "fencing": lease.fencing if lease else None,
            "acquired_at": lease.acquired_at if lease else None,
            "renewed_at": lease.renewed_at if lease else None,
            "expires_at": lease.expires_at if lease else None,
            "renewed_ago_s": round(lease.renewed_ago_s, 3) if lease else None,
            "expires_in_s": round(lease.expires_in_s, 3) if lease else None,
        }
        for sid, lease in _stations(line, leases)
    ]


def _span(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} d"


line_app = typer.Typer(
    no_args_is_help=True, help="The line's orchestrator processes: who serves which station."
)
line_app.command("status")(status)


def register(app: typer.Typer) -> None:
    """Add the commands that run the line to ``app``, and the ``line`` group."""
    app.command()(demo)
    app.command()(run)
    app.command()(worker)
    app.command()(plcsim)
    app.add_typer(line_app, name="line")
