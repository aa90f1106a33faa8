"""Fixtures shared by the cell's tests: robot worker processes, and a generated history
(one line of five stations, two days) in a database of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from cell.demo.history import HistoryOptions, generate_history
from tests.cell.harness import Workers
from tests.conftest import rolled_back_session

HISTORY_END = datetime(2026, 3, 10, tzinfo=UTC)


@pytest.fixture
def workers(redis_url: str, tmp_path: Path) -> Iterator[Callable[[Path, float], Workers]]:
    """Factory of robot worker process groups on the test's Redis; all stopped after."""
    made: list[Workers] = []

    def make(config: Path, scale: float) -> Workers:
        w = Workers(config, redis_url, scale, tmp_path / "logs")
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop_all()


@pytest.fixture(scope="session")
def history_url(make_database: Callable[[], str]) -> str:
    url = make_database()
    generate_history(url, HistoryOptions(stations=5, days=2, end=HISTORY_END, seed=3))
    return url


@pytest.fixture
def hist(history_url: str) -> Iterator[Session]:
    """A session on the generated history; whatever a test writes is rolled back."""
    with rolled_back_session(history_url) as session:
        yield session
