"""``intern demo`` as a user runs it: the sample line on the shipped policies by default."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from cell.config import load_line_config, sample_config_path
from cell.demo.runner import run_demo
from cell.settings import Settings
from policy.runtime import policy_version

pytestmark = pytest.mark.slow


def test_demo_runs_every_station_on_its_shipped_policy_and_says_so(
    tmp_path: Path,
    make_database: Callable[[], str],
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("INTERN_POLICY", raising=False)
    settings = Settings(database_url=make_database(), redis_url=redis_url, data_dir=tmp_path)
    line = load_line_config(sample_config_path())
    console = Console(record=True, width=160)
    rows = run_demo(settings, line, sample_config_path(), parts=3, speed=600.0, console=console)

    by_station = {r.station_id: r for r in rows}
    assert set(by_station) == {st.id for st in line.stations}
    text = console.export_text()
    assert "driven by" in text
    for st in line.stations:
        row = by_station[st.id]
        version = policy_version(st.recipes[0].task)
        # Every job of the station ran the checkpoint shipped for its task, and the
        # summary names it.
        assert row.drivers == (version,), (st.id, row.drivers)
        assert row.jobs >= 3 and row.ok + row.nok == row.jobs
        assert version in text
