"""``intern part`` and ``intern parts``: one part's route through the line, and the parts
the line saw, each a query of ``cell.insight`` on the record.

Part ids are printed as recorded in CSV and JSON. A terminal table shows a separator
character by its name (``<GS>``), and ``intern part`` takes an id written that way too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from cell.cli.common import FormatOpt, StationOpt, database, fail, invalid
from cell.cli.output import Format, emit

if TYPE_CHECKING:
    from cell.insight.genealogy import JobView

# The queries import SQLAlchemy; each command imports them when it runs, so that
# ``intern --help`` stays fast.


def shown(part_id: str) -> str:
    """A part id for a terminal table: separators by name, markup characters escaped."""
    from cell.config import SEPARATORS

    for name, char in SEPARATORS.items():
        part_id = part_id.replace(char, f"<{name}>")
    return escape(part_id)


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
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """One part's route through the line: each station's outcome, fasteners and rework."""
    from cell import insight as an

    with database() as (s, _):
        hist = an.part_history(s, part_id)
        if hist is None and typed(part_id) != part_id:
            hist = an.part_history(s, typed(part_id))
    if hist is None:
        raise fail(f"no part {part_id!r} on record")
    console = Console()
    if fmt is Format.TABLE:
        console.print(
            f"[bold]{shown(hist.part_id)}[/]: {hist.state.value}, "
            f"route {' > '.join(hist.route) or '-'}",
            highlight=False,
        )
    rows = [_job_row(j) for j in hist.jobs]
    emit(rows, fmt, console, title=f"Part {shown(hist.part_id)}", document=hist)


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
    }


def parts(
    since: Annotated[
        str,
        typer.Option(
            help="From this time (ISO 8601, UTC unless an offset is given) or span "
            "back from now (30m, 8h, 2d, 1w)."
        ),
    ] = "7d",
    station: StationOpt = None,
    nok: Annotated[bool, typer.Option("--nok", help="Only parts with a NOK job.")] = False,
    limit: Annotated[int, typer.Option(help="The most recently seen parts, this many.")] = 100,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """Parts the line saw: first and last seen, stations visited, final state
    (ok, nok, reworked, scrapped), oldest first."""
    from cell.insight.parts import PartsParams, parts_seen

    try:
        p = PartsParams.model_validate(
            {"since": since, "station": station, "nok": nok, "limit": limit}
        )
    except ValidationError as exc:
        raise invalid(exc) from None
    with database() as (s, _):
        found = parts_seen(s, p.start(), station=p.station, nok=p.nok, limit=p.limit)
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
    emit(rows, fmt, Console(), title="Parts", document=found)


def register(app: typer.Typer) -> None:
    """Add ``part`` and ``parts`` to ``app``."""
    app.command()(part)
    app.command()(parts)
