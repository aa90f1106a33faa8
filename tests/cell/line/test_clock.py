"""The cell's clock: a simulated one starts where it is placed and is never ahead of the
wall clock (or its limit)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from cell.line.clock import Clock


def test_a_simulated_clock_runs_from_its_origin_in_the_past() -> None:
    origin = datetime.now(UTC) - timedelta(hours=3)
    clock = Clock(1000.0, origin)
    first = clock.now()
    assert origin <= first < datetime.now(UTC)
    asyncio.run(clock.sleep(60.0))  # a simulated minute
    assert clock.now() >= first + timedelta(seconds=60)


def test_a_stopped_clock_reads_its_origin_until_started() -> None:
    origin = datetime.now(UTC) - timedelta(hours=1)
    clock = Clock(500.0, origin, running=False)
    assert clock.now() == origin == clock.origin
    clock.start()
    asyncio.run(clock.sleep(5.0))
    assert clock.now() > origin


def test_a_clock_that_catches_up_reads_the_wall_clock() -> None:
    # Two simulated seconds behind at 10000x: caught up within a wall millisecond.
    clock = Clock(10000.0, datetime.now(UTC) - timedelta(seconds=2))
    asyncio.run(asyncio.sleep(0.01))
    before = datetime.now(UTC)
    read = clock.now()
    assert before <= read <= datetime.now(UTC)


def test_a_clock_never_reads_past_its_limit() -> None:
    origin = datetime.now(UTC) - timedelta(hours=2)
    limit = origin + timedelta(seconds=30)
    clock = Clock(10000.0, origin, limit=limit)
    asyncio.run(asyncio.sleep(0.01))
    assert clock.now() == limit


def test_scale_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Clock(0.0)
