"""``intern history generate``: a realistic plant history into the record."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from cell.cli.common import database, fail, invalid

history_app = typer.Typer(no_args_is_help=True, help="Generated plant histories.")


@history_app.command("generate")
def generate(
    stations: Annotated[int, typer.Option(help="Stations, on lines of five.")] = 20,
    days: Annotated[int, typer.Option(help="Days of history ending at --end.")] = 365,
    end: Annotated[
        datetime | None, typer.Option(help="Last day (exclusive, UTC); default today.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    trace_sample: Annotated[
        float, typer.Option(help="Share of OK fasteners stored with their torque-angle trace.")
    ] = 0.01,
) -> None:
    """Write a plant history (shifts, downtime, NOK bursts, policy roll-outs, robot
    swaps, alerts) with binary COPY, then rebuild the rollups."""
    from cell.demo.history import HistoryOptions, generate_history
    from cell.demo.history.generate import HistoryError

    try:
        opts = HistoryOptions(
            stations=stations, days=days, end=end, seed=seed, trace_sample=trace_sample
        )
    except ValidationError as exc:
        raise invalid(exc) from None
    err = Console(stderr=True)
    with database() as (session, svc):
        session.close()
        assert svc.database_url
        try:
            rep = generate_history(svc.database_url, opts, progress=err.print)
        except HistoryError as exc:
            raise fail(str(exc)) from None
    out = Console()
    out.print(
        f"{rep.start:%Y-%m-%d} .. {rep.end:%Y-%m-%d}: "
        + ", ".join(f"{k} {v:,}" for k, v in rep.rows.items())
    )
    out.print(
        "seconds: "
        + ", ".join(f"{k} {v:.1f}" for k, v in rep.seconds.items())
        + f"; on disk {rep.bytes_on_disk / 2**30:.2f} GiB"
    )
