"""``intern policy rollout ...``: canary rollouts of a policy version on a station.

``start`` and ``stop`` are supervisors' acts through ``cell.record.acts.Acts``, recorded
with their author and audited (role ``cli``); a refused act exits 1 with the reason,
bad input (an unknown station, a share outside (0, 1)) exits 2 with one line. ``status``
asks the rule for a decision on each running rollout it shows before printing it (the
rule's answer on the jobs recorded so far, dated when the deciding job ended: the same
decision the station records when it asks after each job). Mounted under ``intern
policy`` by ``cell.cli``; it imports neither ``policy`` nor torch.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console

from cell.cli.common import AuthorOpt, ConfigOpt, FormatOpt, check_names, database, fail, the_line
from cell.cli.output import Format, emit

CLI_ROLE = "cli"  # the role an act from the terminal is audited with

rollout_app = typer.Typer(
    no_args_is_help=True,
    help="Canary rollouts: a candidate policy version beside the incumbent on a station.",
)

StationArg = Annotated[str, typer.Option("--station", help="The station.")]


@rollout_app.command("start")
def start_cmd(
    station: StationArg,
    candidate: Annotated[str, typer.Option("--candidate", help="The candidate policy version.")],
    author: AuthorOpt,
    share: Annotated[
        float, typer.Option(help="Share of the station's jobs run by the candidate (0 to 1).")
    ] = 0.2,
    incumbent: Annotated[
        str | None,
        typer.Option(
            help="The incumbent version (default: the station's promoted version, "
            "else its latest job's)."
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Start running a candidate policy version beside the incumbent on a station."""
    from cell.record.acts import Actor, Acts

    if not 0.0 < share < 1.0:
        raise fail(f"--share must be between 0 and 1 (exclusive), got {share}")
    line = the_line(config)
    with database() as (s, _):
        check_names(s, line, station=station)
        row = Acts(s, Actor(author, CLI_ROLE)).start_rollout(
            station, candidate, share=share, incumbent=incumbent
        )
        typer.echo(
            f"rollout {row.id} started at {station}: {row.candidate_version} on "
            f"{row.share:.0%} of the jobs beside {row.incumbent_version}"
        )


@rollout_app.command("stop")
def stop_cmd(
    station: StationArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")],
    author: AuthorOpt,
    config: ConfigOpt = None,
) -> None:
    """Stop the rollout running on a station; the incumbent stays."""
    from cell.record.acts import Actor, Acts

    line = the_line(config)
    with database() as (s, _):
        check_names(s, line, station=station)
        row = Acts(s, Actor(author, CLI_ROLE)).stop_rollout(station, reason=reason)
        typer.echo(f"rollout {row.id} at {station} stopped: {row.incumbent_version} stays")


@rollout_app.command("status")
def status_cmd(
    station: Annotated[
        str | None,
        typer.Option("--station", help="Only this station, all its rollouts.", show_default=False),
    ] = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """Each station's latest rollout (with --station: all of its rollouts), latest first."""
    from cell.record import rollouts as ro

    line = the_line(config)
    with database() as (s, _):
        check_names(s, line, station=station)
        for row in ro.status(s, station):
            if row.state == ro.RUNNING:
                ro.decide(s, row.rollout_id)
        rows = [asdict(r) for r in ro.status(s, station)]
        emit(
            rows,
            fmt,
            Console(),
            title="Rollouts",
            empty="no rollouts on record: start one with `intern policy rollout start`",
            zone=ZoneInfo(line.timezone),
            keep=("station_id", "candidate_version", "state"),
        )
