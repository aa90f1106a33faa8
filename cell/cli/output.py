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
from rich.cells import cell_len
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

    def span(self, i: int) -> tuple[int, int]:
        """The fewest and the most characters column ``i`` needs. A number or an id
        takes its widest value (its heading may wrap at spaces to that); text wraps at
        spaces, so it needs its longest word."""
        label, values = self.specs[i].label, [row[i] for row in self.cells]
        word = max(cell_len(w) for text in [label, *values] for w in text.split() or [""])
        most = max(cell_len(text) for text in [label, *values])
        if self.specs[i].kind in WHOLE:
            fixed = max(max(cell_len(v) for v in values), word)
            return fixed, max(fixed, most)
        return word, most

    def widths(self, shown: Sequence[int], room: int) -> list[int] | None:
        """Widths for the ``shown`` columns in ``room`` characters of text (the table's
        padding and rules apart), or None when even their fewest do not fit. The room
        left after the fewest goes to the columns that can use it, in proportion."""
        spans = [self.span(i) for i in shown]
        if sum(most for _, most in spans) <= room:
            return [most for _, most in spans]
        spare = room - sum(fewest for fewest, _ in spans)
        if spare < 0:
            return None
        lack = [most - fewest for fewest, most in spans]
        return [f + spare * k // sum(lack) for (f, _), k in zip(spans, lack, strict=True)]

    def table(self, title: str, shown: Sequence[int], widths: Sequence[int] = ()) -> Table:
        """The ``shown`` columns, each as wide as its widest value, or as ``widths``
        says. Numbers and ids are never wrapped; text wraps at spaces."""
        t = Table(title=title or None, box=box.SIMPLE_HEAD, title_justify="left")
        for j, i in enumerate(shown):
            spec, width = self.specs[i], widths[j] if widths else None
            if spec.kind not in WHOLE:
                t.add_column(spec.label, overflow="fold", width=width)
                continue
            heading = textwrap.fill(spec.label, width) if width else spec.label
            t.add_column(heading, justify=_justify(spec.kind), no_wrap=True, width=width)
        for row in self.cells:
            # Text, not markup: a value is shown as recorded, brackets and all.
            t.add_row(*(Text(row[i]) for i in shown))
        return t

    def vertical(self, title: str, row: int, room: int) -> Table:
        """Row ``row`` as a two-column table of headings and values, in ``room``
        characters of text: the values get what they need (at least their widest number
        or id), the headings what is left."""
        labels = [spec.label for spec in self.specs]
        values = self.cells[row]
        whole = [v for spec, v in zip(self.specs, values, strict=True) if spec.kind in WHOLE]
        label_w = max(cell_len(label) for label in labels)
        value_w = max(cell_len(v) for v in values)
        if label_w + value_w > room:
            value_w = max(room - label_w, *(cell_len(v) for v in whole), 1)
            label_w = max(room - value_w, 1)
        t = Table(title=title or None, box=box.SIMPLE_HEAD, title_justify="left", show_header=False)
        t.add_column(overflow="fold", style="bold", width=label_w)
        t.add_column(overflow="fold", width=value_w)
        for label, value in zip(labels, values, strict=True):
            t.add_row(label, Text(value))
        return t


def _natural_width(console: Console, table: Table) -> int:
    return Measurement.get(console, console.options.update_width(100_000), table).maximum


def _room(console: Console, columns: int) -> int:
    """The characters left for the text of ``columns`` columns in a table as wide as the
    terminal (the rest goes to padding, rules and edges)."""
    probe = Table(box=box.SIMPLE_HEAD)
    for _ in range(columns):
        probe.add_column(width=1)
    return console.width - (_natural_width(console, probe) - columns)


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
    if _natural_width(console, roomy) <= console.width:
        console.print(roomy, highlight=False)
        return
    shown = _fit(console, grid)
    widths = grid.widths(shown, _room(console, len(shown)))
    if len(rows) == 1 or widths is None:
        # One row, or not even the columns that matter most fit side by side: a block
        # of headings and values per row, every column in it.
        for i in range(len(rows)):
            block = grid.vertical(title if i == 0 else "", i, _room(console, 2))
            console.print(block, highlight=False)
        return
    console.print(grid.table(title, shown, widths), highlight=False)
    hidden = [grid.specs[i].label for i in everything if i not in shown]
    if hidden:
        console.print(
            f"[dim]left out to fit {console.width} columns: {', '.join(hidden)} "
            "(a wider terminal shows them; --format csv has everything)[/]",
            highlight=False,
        )


def _fit(console: Console, grid: _Grid) -> list[int]:
    """The columns to show on ``console``: first the least useful (worth 2 and 3) go
    until the rest fits unwrapped; then, if even wrapped text does not fit, those worth
    1. The rightmost goes first among equals."""
    shown = list(range(len(grid.keys)))

    def unwrapped(cols: list[int]) -> bool:
        return sum(grid.span(i)[1] for i in cols) <= _room(console, len(cols))

    def wrapped(cols: list[int]) -> bool:
        return grid.widths(cols, _room(console, len(cols))) is not None

    for floor, fits in ((2, unwrapped), (1, wrapped)):
        candidates = [i for i in shown if grid.specs[i].worth >= floor]
        for i in sorted(candidates, key=lambda i: (-grid.specs[i].worth, -i)):
            if fits(shown):
                break
            shown.remove(i)
    return shown


def _print_whole(console: Console, table: Table) -> None:
    """Print ``table`` as wide as its widest values, without padding at line ends."""
    width = _natural_width(console, table)
    buf = io.StringIO()
    Console(file=buf, width=max(width, 20), color_system=None, highlight=False).print(table)
    console.file.write("\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n")
