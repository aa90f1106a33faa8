"""Rows for people and scripts: a terminal table, CSV or JSON.

CSV and JSON carry the rows' machine names and values as they are. The table is for a
person: headings and values as ``cell.cli.columns`` writes them; on a terminal it fits
the width (text wraps, then the least useful columns are left out, with a note saying
which); piped into a file or another program it prints every value whole, however wide.
A number or an id is never cut or wrapped.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import textwrap
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date, datetime, tzinfo
from enum import StrEnum
from typing import Any, Literal

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from cell.cli.columns import WHOLE, Column, Kind, cell, column, guessed


class Format(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


def plain(value: Any) -> Any:
    """JSON-ready: dataclasses to dicts, times to ISO 8601, tuples to lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    return str(value)


def emit(
    rows: Iterable[Mapping[str, Any]],
    fmt: Format,
    console: Console,
    *,
    title: str = "",
    document: Any = None,
    empty: str = "",
    zone: tzinfo | None = None,
    keep: Collection[str] = (),
) -> None:
    """Print ``rows`` (flat mappings) in ``fmt``; JSON prints ``document`` when given.

    A table prints ``empty`` (default: "<title>: nothing to show") when there are no rows,
    times in ``zone`` (default: as they are), and never leaves out the columns in ``keep``
    (e.g. what the rows are grouped by) to fit a narrow terminal.
    """
    rows = list(rows)
    if fmt is Format.JSON:
        console.print_json(json.dumps(plain(document) if document is not None else plain(rows)))
        return
    if fmt is Format.CSV:
        flat = [plain(r) for r in rows]
        columns = list(dict.fromkeys(k for r in flat for k in r))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for r in flat:
            writer.writerow({k: _csv_cell(r.get(k)) for k in columns})
        console.file.write(buf.getvalue())
        return
    if not rows:
        console.print(empty or f"{title or 'Rows'}: nothing to show", highlight=False)
        return
    print_table(rows, console, title=title, zone=zone, keep=keep)


def _justify(kind: Kind) -> Literal["left", "right"]:
    """Numbers to the right, so their digits line up; ids and times to the left."""
    return "left" if kind in (Kind.ID, Kind.TIME, Kind.RESULT) else "right"


@dataclasses.dataclass(frozen=True)
class _Grid:
    """Rows written out: the columns' specs and each row's cells as text."""

    keys: list[str]
    specs: list[Column]
    cells: list[list[str]]

    @classmethod
    def of(
        cls,
        rows: Sequence[Mapping[str, Any]],
        zone: tzinfo | None,
        keep: Collection[str],
        names_as_given: bool,
    ) -> _Grid:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        heading = guessed if names_as_given else column
        specs = [heading(k, next((r[k] for r in rows if r.get(k) is not None), None)) for k in keys]
        specs = [
            dataclasses.replace(s, worth=0) if k in keep else s
            for k, s in zip(keys, specs, strict=True)
        ]
        cells = [
            [cell(s.kind, r.get(k), zone) for k, s in zip(keys, specs, strict=True)] for r in rows
        ]
        return cls(keys, specs, cells)

    def table(self, title: str, shown: Sequence[int], compact: bool = False) -> Table:
        """The ``shown`` columns. Numbers and ids are never wrapped by the table; made
        ``compact``, their headings wrap at spaces to the width of the widest value."""
        t = Table(title=title or None, box=box.SIMPLE_HEAD, title_justify="left")
        for i in shown:
            spec = self.specs[i]
            if spec.kind not in WHOLE:
                t.add_column(spec.label, overflow="fold")
                continue
            heading = spec.label
            if compact:
                values = max(len(row[i]) for row in self.cells)
                words = max(len(w) for w in spec.label.split())
                heading = textwrap.fill(spec.label, max(values, words))
            t.add_column(heading, justify=_justify(spec.kind), no_wrap=True)
        for row in self.cells:
            # Text, not markup: a value is shown as recorded, brackets and all.
            t.add_row(*(Text(row[i]) for i in shown))
        return t

    def vertical(self, title: str, row: int) -> Table:
        """Row ``row`` as a two-column table of headings and values."""
        t = Table(title=title or None, box=box.SIMPLE_HEAD, title_justify="left", show_header=False)
        t.add_column(overflow="fold", style="bold")
        t.add_column(overflow="fold")
        for spec, value in zip(self.specs, self.cells[row], strict=True):
            t.add_row(spec.label, Text(value))
        return t


def _min_width(console: Console, table: Table) -> int:
    return Measurement.get(console, console.options.update_width(100_000), table).minimum


def _max_width(console: Console, table: Table) -> int:
    return Measurement.get(console, console.options.update_width(100_000), table).maximum


def print_table(
    rows: Sequence[Mapping[str, Any]],
    console: Console,
    *,
    title: str,
    zone: tzinfo | None = None,
    keep: Collection[str] = (),
    names_as_given: bool = False,
) -> None:
    """``rows`` as a table on ``console``: fitted to a terminal, whole when piped. The
    headings are the columns' human names, or with ``names_as_given`` the keys as they
    are (a SQL result's columns)."""
    grid = _Grid.of(rows, zone, keep, names_as_given)
    everything = list(range(len(grid.keys)))
    roomy = grid.table(title, everything)
    if not console.is_terminal:
        _print_whole(console, roomy)
        return
    width = console.width
    if _max_width(console, roomy) <= width:
        console.print(roomy, highlight=False)
        return
    shown = _fit(console, grid, title, width)
    table = grid.table(title, shown, compact=True)
    if len(rows) == 1 or _min_width(console, table) > width:
        # One row, or not even the columns that matter most fit side by side: a block
        # of headings and values per row, every column in it.
        for i in range(len(rows)):
            console.print(grid.vertical(title if i == 0 else "", i), highlight=False)
        return
    console.print(table, highlight=False)
    hidden = [grid.specs[i].label for i in everything if i not in shown]
    if hidden:
        console.print(
            f"[dim]left out to fit {width} columns: {', '.join(hidden)} "
            "(a wider terminal shows them; --format csv has everything)[/]",
            highlight=False,
        )


def _fit(console: Console, grid: _Grid, title: str, width: int) -> list[int]:
    """The columns to show in ``width``: first the least useful (worth 2 and 3) go until
    the rest fits unwrapped; then, if even wrapped text does not fit, those worth 1. The
    rightmost goes first among equals."""
    shown = list(range(len(grid.keys)))
    phases = ((2, lambda t: _max_width(console, t)), (1, lambda t: _min_width(console, t)))
    for floor, needed in phases:
        candidates = [i for i in shown if grid.specs[i].worth >= floor]
        for i in sorted(candidates, key=lambda i: (-grid.specs[i].worth, -i)):
            if needed(grid.table(title, shown, compact=True)) <= width:
                break
            shown.remove(i)
    return shown


def _print_whole(console: Console, table: Table) -> None:
    """Print ``table`` as wide as its widest values, without padding at line ends."""
    width = _max_width(console, table)
    buf = io.StringIO()
    Console(file=buf, width=max(width, 20), color_system=None, highlight=False).print(table)
    console.file.write("\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n")
