"""``intern part`` and ``intern parts``: one part's route through the line, and the parts
the line saw, each a query of ``cell.insight`` on the record.

Part ids are printed as recorded in CSV and JSON. A terminal table shows a separator
character by its name (``<GS>``), and ``intern part`` takes an id written that way too.
Times are read and shown in the line's time zone unless they carry an offset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from cell.cli.common import (
    ConfigOpt,
    FormatOpt,
    StationOpt,
    check_names,
    database,
    fail,
    invalid,
    the_line,
)
from cell.cli.output import Format, emit

if TYPE_CHECKING:
    from cell.insight.genealogy import JobView

# The queries import SQLAlchemy; each command imports them when it runs, so that
# ``intern --help`` stays fast.


def shown(part_id: str) -> str:
    """A part id for a terminal: its separator characters by name (``<GS>``)."""
    from cell.config import SEPARATORS

    for name, char in SEPARATORS.items():
        part_id = part_id.replace(char, f"<{name}>")
    return part_id


def typed(part_id: str) -> str:
    """A part id as a person typed it, separators written by name (``<GS>``) or not."""
    from cell.config import SEPARATORS

    for name, char in SEPARATORS.items():
        part_id = part_id.replace(f"<{name}>", char)
    return part_id


def part(
    part_id: Annotated[
        str, typer.Argument(help="The part's DMC / serial (a separator may be written <GS>).")
    ],
    config: ConfigOpt = None,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """One part's route through the line: each station's outcome, fasteners and rework."""
    from cell import insight as an

    line = the_line(config)
    with database() as (s, _):
        hist = an.part_history(s, part_id)
        if hist is None and typed(part_id) != part_id:
            hist = an.part_history(s, typed(part_id))
    if hist is None:
        raise fail(f"no part {part_id!r} on record")
    console = Console()
    name = escape(shown(hist.part_id))  # titles are markup; a code's brackets are not
    if fmt is Format.TABLE:
        console.print(
            f"[bold]{name}[/]: {hist.state.value}, route {' > '.join(hist.route) or '-'}",
            highlight=False,
        )
    rows = [_job_row(j) for j in hist.jobs]
    emit(
        rows,
        fmt,
        console,
        title=f"Part {name}",
        document=hist,
        empty=f"part {name} has no job on record",
        zone=ZoneInfo(line.timezone),
    )


def _job_row(j: JobView) -> dict[str, object]:
    """One job of a part's route as a row: where, when, what came out of it."""
    bad = [f"{f.side[0].upper()}{f.position}" for f in j.fasteners if not f.ok]
    fasteners = f"{len(j.fasteners) - len(bad)}/{len(j.fasteners)} OK" if j.fasteners else ""
    return {
        "station_id": j.station_id,
        "job_seq": j.job_seq,
        "started_at": j.started_at,
        "ended_at": j.ended_at,
        "robot_id": j.robot_id,
        "outcome": "OK" if j.ok else f"NOK {j.error_name}".rstrip(),
        "attempt": j.attempt,
        "cycle_time_s": j.cycle_time_ms / 1000,
        "fasteners": fasteners + (f" (NOK: {' '.join(bad)})" if bad else ""),
        "rework": j.rework or "",
        "alerts": len(j.alerts),
        "episode": ""
        if j.episode is None
        else j.episode.path + (" (pruned)" if j.episode.pruned else ""),
    }


def parts(
    since: Annotated[
        str,
        typer.Option(
            help="From this time, ISO 8601: 2026-03-01T06:00 (the line's time zone) or "
            "2026-03-01T06:00+01:00; or a span back from now: 30m, 8h, 2d, 1w."
        ),
    ] = "7d",
    station: StationOpt = None,
    nok: Annotated[bool, typer.Option("--nok", help="Only parts with a NOK job.")] = False,
    limit: Annotated[int, typer.Option(help="The most recently seen parts, this many.")] = 100,
    config: ConfigOpt = None,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """Parts the line saw: first and last seen, stations visited, final state
    (ok, nok, reworked, scrapped), oldest first."""
    from cell.insight.params import parse_time
    from cell.insight.parts import PartsParams, parts_seen, span

    line = the_line(config)
    try:
        start = since if span(since) is not None else parse_time(since, line.timezone)
    except ValueError as exc:
        raise fail(f"--since: {exc}; or a span back from now: 30m, 8h, 2d, 1w") from None
    try:
        p = PartsParams.model_validate(
            {"since": start, "station": station, "nok": nok, "limit": limit}
        )
    except ValidationError as exc:
        raise invalid(exc) from None
    t0 = p.start()
    with database() as (s, _):
        check_names(s, line, station=p.station)
        found = parts_seen(s, t0, station=p.station, nok=p.nok, limit=p.limit)
    zone = ZoneInfo(line.timezone)
    rows = [
        {
            "part_id": shown(r.part_id) if fmt is Format.TABLE else r.part_id,
            "first_seen": r.first_seen,
            "last_seen": r.last_seen,
            "stations": " > ".join(r.stations),
            "jobs": r.jobs,
            "nok_jobs": r.nok_jobs,
            "state": r.state.value,
        }
        for r in found
    ]
    which = ("NOK " if p.nok else "") + "parts" + (f" at {p.station}" if p.station else "")
    emit(
        rows,
        fmt,
        Console(),
        title="Parts",
        document=found,
        empty=f"no {which} since {t0.astimezone(zone):%Y-%m-%d %H:%M} ({line.timezone})",
        zone=zone,
    )


def register(app: typer.Typer) -> None:
    """Add ``part`` and ``parts`` to ``app``."""
    app.command()(part)
    app.command()(parts)
