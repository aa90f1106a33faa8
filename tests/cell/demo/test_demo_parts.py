"""Castings of ``intern demo`` flow through the line: each part is seen at ST10, then
ST20, then ST30 under one id, and a second run in the same data folder brings new ids."""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from cell.cli import register
from cell.config import load_line_config, sample_config_path
from cell.demo.runner import run_demo
from cell.settings import Settings

pytestmark = pytest.mark.slow

ROUTE = ["ST10", "ST20", "ST30"]


def test_parts_flow_through_the_line_and_a_second_run_brings_new_ids(
    tmp_path: Path,
    make_database: Callable[[], str],
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The scripted expert starts without loading a model: this test is about the parts.
    settings = Settings(
        database_url=make_database(), redis_url=redis_url, data_dir=tmp_path, policy="expert"
    )
    line = load_line_config(sample_config_path())
    assert [st.id for st in line.stations] == ROUTE

    def demo(parts: int) -> None:
        console = Console(record=True, width=160)
        run_demo(settings, line, sample_config_path(), parts=parts, speed=600.0, console=console)

    monkeypatch.setenv("INTERN_DATABASE_URL", settings.database_url or "")
    app = typer.Typer()
    register(app)
    runner = CliRunner()

    def cli_json(*args: str) -> list[dict[str, object]] | dict[str, object]:
        res = runner.invoke(app, [*args, "--format", "json"])
        assert res.exit_code == 0, res.output
        doc: list[dict[str, object]] | dict[str, object] = json.loads(res.stdout)
        return doc

    demo(3)
    first = cli_json("parts")
    assert isinstance(first, list) and len(first) == 3
    assert all(p["stations"] == ROUTE for p in first), first
    part = cli_json("part", str(first[0]["part_id"]))
    assert isinstance(part, dict) and part["route"] == ROUTE
    jobs = part["jobs"]
    assert isinstance(jobs, list) and [j["station_id"] for j in jobs] == ROUTE
    # A part enters a station only after it left the one before.
    assert all(a["ended_at"] <= b["started_at"] for a, b in pairwise(jobs))

    demo(2)
    both = cli_json("parts")
    assert isinstance(both, list)
    second = [p for p in both if p["part_id"] not in {q["part_id"] for q in first}]
    assert len(both) == 5 and len(second) == 2, "the second run reused part ids"
    assert all(p["stations"] == ROUTE for p in second)
