"""``intern`` commands for supervisors and technicians: the roster, reassignment and the
alert queue. Each act goes through ``cell.record.acts.Acts``, recorded with its author
and audited (role ``cli``), refusals included; a refused act exits 1 with the reason. A
robot or station that neither the line nor the record knows exits 2 naming the known ones.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console

from cell.cli.common import (
    AuthorOpt,
    ConfigOpt,
    DaysOpt,
    EndOpt,
    FormatOpt,
    StartOpt,
    StationOpt,
    check_names,
    database,
    fail,
    the_line,
    window,
)
from cell.cli.output import Format, emit
from cell.record.outcomes import Rework

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from cell.config import LineConfig
    from cell.record.models import Alert

CLI_ROLE = "cli"  # the role an act from the terminal is audited with

# The record's modules import SQLAlchemy; each command imports them when it runs, so
# that ``intern --help`` stays fast.

NO_ROBOTS = (
    "no robots on record yet: the line records its robots when it first runs "
    "(intern run or intern demo)"
)


def _roster(s: Session, line: LineConfig, fmt: Format) -> None:
    from cell.record.roster import roster

    rows = [asdict(e) | {"skills": ", ".join(e.skills)} for e in roster(s)]
    emit(rows, fmt, Console(), title="Roster", empty=NO_ROBOTS, zone=ZoneInfo(line.timezone))


def roster_cmd(config: ConfigOpt = None, fmt: FormatOpt = Format.TABLE) -> None:
    """Which robot serves which station, since when, by whom and why."""
    line = the_line(config)
    with database() as (s, _):
        _roster(s, line, fmt)


def assign(
    robot: Annotated[str, typer.Option(help="The robot to move.")],
    reason: Annotated[str, typer.Option(help="Why (recorded).")],
    author: AuthorOpt,
    station: Annotated[str | None, typer.Option(help="Move the robot to this station.")] = None,
    swap_with: Annotated[str | None, typer.Option(help="Swap stations with this robot.")] = None,
    maintenance: Annotated[bool, typer.Option(help="Take the robot out of service.")] = False,
    config: ConfigOpt = None,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """Reassign a robot, swap two, or send one to maintenance (next cycle boundary)."""
    if [bool(station), bool(swap_with), maintenance].count(True) != 1:
        raise fail("give exactly one of --station, --swap-with or --maintenance")
    from cell.record.acts import Actor, Acts

    line = the_line(config)
    with database() as (s, _):
        check_names(s, line, robot=robot, station=station)
        check_names(s, line, robot=swap_with)
        acts = Acts(s, Actor(author, CLI_ROLE))
        if station:
            acts.reassign(robot, station, reason=reason)
        elif swap_with:
            acts.swap(robot, swap_with, reason=reason)
        else:
            acts.maintenance(robot, reason=reason)
        _roster(s, line, fmt)


alerts_app = typer.Typer(help="The technicians' alert queue (without a command: the open ones).")

ClosedOpt = Annotated[
    bool,
    typer.Option(
        "--closed",
        help="Alerts cleared in the window (--start/--end/--days) instead, latest first.",
    ),
]


@alerts_app.callback(invoke_without_command=True)
def alerts_queue(
    ctx: typer.Context,
    station: StationOpt = None,
    closed: ClosedOpt = False,
    start: StartOpt = None,
    end: EndOpt = None,
    days: DaysOpt = 7.0,
    config: ConfigOpt = None,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """The open alerts, oldest first (or, with --closed, the ones cleared)."""
    if ctx.invoked_subcommand is None:
        alerts_list(station, closed, start, end, days, config, fmt)


@alerts_app.command("list")
def alerts_list(
    station: StationOpt = None,
    closed: ClosedOpt = False,
    start: StartOpt = None,
    end: EndOpt = None,
    days: DaysOpt = 7.0,
    config: ConfigOpt = None,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """Open alerts, oldest first; with --closed, the alerts cleared in the window."""
    from cell.record.alerts import closed_alerts, open_alerts

    line = the_line(config)
    span = window(line, start, end, days, station).window()
    since, until = span.start, span.end
    with database() as (s, _):
        check_names(s, line, station=station)
        found = closed_alerts(s, since, until, station) if closed else open_alerts(s, station)
        rows = [_alert_row(a, closed) for a in found]
    where = f" at {station}" if station else ""
    zone = ZoneInfo(line.timezone)
    when = (
        f" from {since.astimezone(zone):%Y-%m-%d %H:%M} to {until.astimezone(zone):%Y-%m-%d %H:%M}"
    )
    emit(
        rows,
        fmt,
        Console(),
        title=("Closed alerts" if closed else "Open alerts") + where,
        empty=f"no alerts cleared{where}{when} ({line.timezone})"
        if closed
        else f"no open alerts{where}",
        zone=zone,
    )


def _alert_row(a: Alert, closed: bool) -> dict[str, object]:
    row: dict[str, object] = {
        "id": a.id,
        "station_id": a.station_id,
        "raised_at": a.raised_at,
        "part_id": a.part_id,
        "message": a.message,
        "acknowledged_by": a.acknowledged_by,
        "rework": a.rework,
    }
    if closed:
        row |= {"cleared_at": a.cleared_at, "cleared_by": a.cleared_by}
    return row


def _step(alert_id: int, step: str, author: str, outcome: Rework | None = None) -> None:
    from cell.record.acts import Actor, Acts

    with database() as (s, _):
        acts = Acts(s, Actor(author, CLI_ROLE))
        if step == "ack":
            a = acts.acknowledge(alert_id)
        elif step == "rework":
            assert outcome is not None
            a = acts.rework(alert_id, outcome)
        else:
            a = acts.clear(alert_id)
        Console().print(f"alert {a.id}: {step} recorded by {author}")


@alerts_app.command("ack")
def alerts_ack(alert_id: int, author: AuthorOpt) -> None:
    """Acknowledge an alert."""
    _step(alert_id, "ack", author)


@alerts_app.command("rework")
def alerts_rework(alert_id: int, outcome: Rework, author: AuthorOpt) -> None:
    """Record what was done to the alert's part (reworked_ok or scrapped)."""
    _step(alert_id, "rework", author, outcome)


@alerts_app.command("clear")
def alerts_clear(alert_id: int, author: AuthorOpt) -> None:
    """Clear an acknowledged (and, with a part, reworked) alert."""
    _step(alert_id, "clear", author)


def register(app: typer.Typer) -> None:
    """Add the roster and alert commands to ``app``."""
    app.command("roster")(roster_cmd)
    app.command()(assign)
    app.add_typer(alerts_app, name="alerts")
