"""Fixtures shared by the cell's behaviour tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cell.harness import Workers


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
