"""``intern`` commands for supervisors and technicians: the roster, reassignment and the
alert queue. Each act goes through ``cell.record.acts.Acts``, recorded with its author
and audited (role ``cli``), refusals included; a refused act exits 1 with the reason.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console

from cell.cli.common import AuthorOpt, FormatOpt, StationOpt, database, fail
from cell.cli.output import Format, emit
from cell.record.outcomes import Rework

CLI_ROLE = "cli"  # the role an act from the terminal is audited with

# The record's modules import SQLAlchemy; each command imports them when it runs, so
# that ``intern --help`` stays fast.


def roster_cmd(fmt: FormatOpt = Format.TABLE) -> None:
    """Which robot serves which station, since when, by whom and why."""
    from cell.record.roster import roster

    with database() as (s, _):
        rows = [asdict(e) | {"skills": ", ".join(e.skills)} for e in roster(s)]
    emit(rows, fmt, Console(), title="Roster")


def assign(
    robot: Annotated[str, typer.Option(help="The robot to move.")],
    reason: Annotated[str, typer.Option(help="Why (recorded).")],
    author: AuthorOpt,
    station: Annotated[str | None, typer.Option(help="Move the robot to this station.")] = None,
    swap_with: Annotated[str | None, typer.Option(help="Swap stations with this robot.")] = None,
    maintenance: Annotated[bool, typer.Option(help="Take the robot out of service.")] = False,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """Reassign a robot, swap two, or send one to maintenance (next cycle boundary)."""
    if [bool(station), bool(swap_with), maintenance].count(True) != 1:
        raise fail("give exactly one of --station, --swap-with or --maintenance")
    from cell.record.acts import Actor, Acts
    from cell.record.roster import roster

    with database() as (s, _):
        acts = Acts(s, Actor(author, CLI_ROLE))
        if station:
            acts.reassign(robot, station, reason=reason)
        elif swap_with:
            acts.swap(robot, swap_with, reason=reason)
        else:
            acts.maintenance(robot, reason=reason)
        rows = [asdict(e) | {"skills": ", ".join(e.skills)} for e in roster(s)]
    emit(rows, fmt, Console(), title="Roster")


alerts_app = typer.Typer(no_args_is_help=True, help="The technicians' alert queue.")


@alerts_app.command("list")
def alerts_list(station: StationOpt = None, fmt: FormatOpt = Format.TABLE) -> None:
    """Open alerts, oldest first."""
    from cell.record.alerts import open_alerts

    with database() as (s, _):
        rows = [
            {
                "id": a.id,
                "station_id": a.station_id,
                "raised_at": a.raised_at,
                "part_id": a.part_id,
                "message": a.message,
                "acknowledged_by": a.acknowledged_by,
                "rework": a.rework,
            }
            for a in open_alerts(s, station)
        ]
    emit(rows, fmt, Console(), title="Open alerts")


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
