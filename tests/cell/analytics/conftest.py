"""A generated history (one line of five stations, two days) in a database of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from cell.history import HistoryOptions, generate_history
from tests.conftest import rolled_back_session

END = datetime(2026, 3, 10, tzinfo=UTC)


@pytest.fixture(scope="session")
def history_url(make_database: Callable[[], str]) -> str:
    url = make_database()
    generate_history(url, HistoryOptions(stations=5, days=2, end=END, seed=3))
    return url


@pytest.fixture
def hist(history_url: str) -> Iterator[Session]:
    """A session on the generated history; whatever a test writes is rolled back."""
    with rolled_back_session(history_url) as session:
        yield session
