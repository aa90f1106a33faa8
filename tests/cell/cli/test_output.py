"""Tables for people, CSV and JSON for scripts: ``cell.cli.output.emit`` on consoles of a
known width, a terminal or a pipe."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from rich.console import Console

from cell.cli.output import Format, emit

VERSION = "a3f9c2d41b7e8f60"  # a policy version id: 16 characters, never cut


def _rows(n: int = 4) -> list[dict[str, object]]:
    return [
        {
            "station_id": f"L1-ST{10 * (i + 1)}",
            "policy_version": VERSION,
            "parts": 12345 + i,
            "retried": 47,
            "first_pass_yield": 0.934567,
            "final_yield": 0.998765,
            "scrapped": 3,
        }
        for i in range(n)
    ]


def _terminal(width: int) -> Console:
    return Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)


def _pipe(width: int = 80) -> Console:
    return Console(file=io.StringIO(), width=width)


def _text(console: Console) -> str:
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()


def test_an_80_column_terminal_shows_whole_numbers_as_percentages() -> None:
    console = _terminal(80)
    emit(_rows(), Format.TABLE, console, title="Yield")
    text = _text(console)
    assert "…" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "93.5 %" in text and "99.9 %" in text  # one decimal, the same in every command
    assert "12,345" in text and VERSION in text
    assert "First-pass" in text and "first_pass_yield" not in text
    # Something had to give at 80 columns: the least useful column, said so.
    assert "Scrapped" not in text.split("left out")[0]
    assert re.search(r"left out to fit 80 columns: .*Scrapped", text.replace("\n", " "))


def test_a_narrow_terminal_leaves_out_columns_but_never_cuts_a_value() -> None:
    console = _terminal(56)
    emit(_rows(), Format.TABLE, console, title="Yield", keep=["policy_version"])
    text = _text(console)
    assert "…" not in text
    body, note = text.split("left out")
    assert VERSION in body and "93.5 %" in body and "L1-ST40" in body
    assert "Retried" not in body and "Final yield" in note.replace("\n", " ")


def test_a_terminal_too_narrow_for_a_table_gets_one_block_per_row() -> None:
    console = _terminal(40)
    emit(_rows(), Format.TABLE, console, title="Yield", keep=["policy_version"])
    text = _text(console)
    assert "…" not in text and "left out" not in text
    assert text.count(VERSION) == 4 and text.count("93.5 %") == 4
    assert re.search(r"Final yield\s+99\.9 %", text)


def test_piped_output_prints_every_value_whole_however_wide() -> None:
    rows = _rows(2)
    rows[0]["message"] = "cross thread at the left side's second nut, " * 4
    console = _pipe(60)
    emit(rows, Format.TABLE, console, title="Yield")
    text = _text(console)
    assert "…" not in text and "left out" not in text
    assert rows[0]["message"].strip() in text  # type: ignore[union-attr]
    assert "Scrapped" in text and "Final yield" in text
    assert not any(line.endswith(" ") for line in text.splitlines())


def test_one_wide_row_is_shown_as_headings_and_values() -> None:
    row = {
        "station_id": "ST20",
        "version_a": "expert",
        "version_b": VERSION,
        "parts_a": 400,
        "yield_a": 0.915,
        "yield_b": 0.9236,
        "difference": 0.0086,
        "ci_low": -0.031,
        "ci_high": 0.047,
        "p_value": 0.66,
        "verdict": "no significant difference",
    }
    console = _terminal(60)
    emit([row], Format.TABLE, console, title="Policy comparison")
    text = _text(console)
    assert re.search(r"First-pass yield B\s+92\.4 %", text)
    assert re.search(r"B - A\s+\+0\.9 pp", text) and "-3.1 pp" in text
    assert VERSION in text and "…" not in text


def test_times_are_shown_in_the_zone_given_and_values_are_not_markup() -> None:
    rows = [{"raised_at": datetime(2026, 3, 8, 5, 30, tzinfo=UTC), "message": "[bold]x[/]"}]
    console = _pipe()
    emit(rows, Format.TABLE, console, zone=ZoneInfo("Europe/Berlin"))
    text = _text(console)
    assert "2026-03-08 06:30" in text and "[bold]x[/]" in text


def test_csv_and_json_keep_machine_names_and_raw_values() -> None:
    rows = _rows(2)
    console = _pipe(40)
    emit(rows, Format.CSV, console)
    got = list(csv.DictReader(io.StringIO(_text(console))))
    assert list(got[0]) == list(rows[0])
    assert float(got[0]["first_pass_yield"]) == 0.9346
    console = _pipe(40)
    emit(rows, Format.JSON, console)
    assert json.loads(_text(console)) == rows


def test_an_empty_answer_says_what_is_missing() -> None:
    console = _pipe()
    emit([], Format.TABLE, console, title="Yield", empty="no parts from A to B")
    assert _text(console).strip() == "no parts from A to B"


def _parts_seen() -> list[dict[str, object]]:
    seen = datetime(2026, 11, 27, 9, 59, 52, tzinfo=UTC)
    return [
        {
            "part_id": f"DC1-261127-101807-{i:06d}",
            "first_seen": seen,
            "last_seen": seen,
            "stations": "ST10 > ST20 > ST30",
            "jobs": 3,
            "nok_jobs": 1,
            "state": "reworked",
            "message": "cross thread at the left side's second nut; reworked by hand",
        }
        for i in range(3)
    ]


@pytest.mark.parametrize("width", range(40, 161, 8))
@pytest.mark.parametrize("rows", [_rows(), _parts_seen()], ids=["yield", "parts"])
def test_at_any_width_no_value_is_cut_and_no_line_is_too_long(
    rows: list[dict[str, object]], width: int
) -> None:
    console = _terminal(width)
    emit(rows, Format.TABLE, console, title="Rows")
    text = _text(console)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    for key in ("parts", "part_id", "first_pass_yield"):
        if key in rows[0]:
            value = {"parts": "12,345", "first_pass_yield": "93.5 %"}.get(key, rows[0][key])
            assert str(value) in text, (key, width)
