"""Rows for people and scripts: a terminal table, CSV or JSON."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table


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


def _cell(value: Any) -> str:
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
) -> None:
    """Print ``rows`` (flat mappings) in ``fmt``; JSON prints ``document`` when given."""
    rows = [plain(r) for r in rows]
    if fmt is Format.JSON:
        console.print_json(json.dumps(plain(document) if document is not None else rows))
        return
    columns = list(dict.fromkeys(k for r in rows for k in r))
    if fmt is Format.CSV:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _cell(r.get(k)) for k in columns})
        console.file.write(buf.getvalue())
        return
    if not rows:
        console.print(f"{title}: nothing in this window" if title else "nothing to show")
        return
    table = Table(title=title or None)
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*(_cell(r.get(c)) for c in columns))
    console.print(table)
