"""``intern demo`` as a user runs it: the sample line on the shipped policies by default,
and the engineers' queries with their default windows right after it. One run serves
every test of this module."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import redis
from rich.console import Console
from sqlalchemy import create_engine

from cell import insight as an
from cell.config import LineConfig, load_line_config, sample_config_path
from cell.demo.runner import run_demo
from cell.insight.oee import NO_SHIFT
from cell.insight.params import WindowParams
from cell.insight.summary import StationSummary
from cell.settings import Settings
from policy.runtime import policy_version
from tests.cell.demo.record_checks import later_than
from tests.conftest import make_url_db, rolled_back_session

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class DemoRun:
    db: str
    line: LineConfig
    rows: list[StationSummary]
    output: str


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory,
    make_database: Callable[[], str],
    redis_server_url: str,
) -> Iterator[DemoRun]:
    mp = pytest.MonkeyPatch()
    mp.delenv("INTERN_POLICY", raising=False)
    broker = make_url_db(redis_server_url, 9)
    client = redis.Redis.from_url(broker)
    client.flushdb()
    db = make_database()
    settings = Settings(database_url=db, redis_url=broker, data_dir=tmp_path_factory.mktemp("demo"))
    line = load_line_config(sample_config_path())
    console = Console(record=True, width=160)
    rows = run_demo(settings, line, sample_config_path(), parts=3, speed=600.0, console=console)
    yield DemoRun(db, line, rows, console.export_text())
    mp.undo()
    client.flushdb()
    client.close()


def test_demo_runs_every_station_on_its_shipped_policy_and_says_so(demo: DemoRun) -> None:
    by_station = {r.station_id: r for r in demo.rows}
    assert set(by_station) == {st.id for st in demo.line.stations}
    assert "driven by" in demo.output
    for st in demo.line.stations:
        row = by_station[st.id]
        version = policy_version(st.recipes[0].task)
        # Every job of the station ran the checkpoint shipped for its task, and the
        # summary names it.
        assert row.drivers == (version,), (st.id, row.drivers)
        assert row.jobs >= 3 and row.ok + row.nok == row.jobs
        assert version in demo.output


def test_nothing_on_record_is_later_than_now(demo: DemoRun) -> None:
    engine = create_engine(demo.db)
    with engine.connect() as c:
        assert later_than(c, datetime.now(UTC)) == {}
    engine.dispose()


def test_the_default_windows_show_every_station_with_its_parts(demo: DemoRun) -> None:
    """What ``intern yield``, ``intern oee`` and friends ask with no options."""
    parts = {r.station_id: r.jobs for r in demo.rows}
    with rolled_back_session(demo.db) as s:
        week = WindowParams().window()
        day = WindowParams(days=1).window()
        assert {r.station_id: r.parts for r in an.yield_by(s, week)} == parts
        assert sum(r.count for r in an.nok_pareto(s, week)) == sum(r.nok for r in demo.rows)
        assert {c.station_id: c.jobs for c in an.cycle_distribution(s, week)} == parts
        assert {r.station_id for r in an.spc_summary(s, week)} == {"ST10", "ST20"}
        oee = an.oee_by_shift(s, day)
    # No shift on record: one row per station over the window, the stations' time in
    # service as planned time.
    assert {r.station_id: r.parts for r in oee} == parts
    for r in oee:
        assert r.shift == NO_SHIFT
        assert r.availability is not None and 0.0 < r.availability <= 1.0
        assert r.oee is not None and r.oee > 0.0
