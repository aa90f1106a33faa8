"""The cell's clock: the wall clock, or a simulated one that is never ahead of it.

The production loop stamps every record with ``now()`` and never sleeps on this clock:
pacing a simulated job to its cycle time is the simulated robot's business.

A simulated run (a demo, a shift) makes its clock run ``scale`` simulated seconds per
wall second from an ``origin`` in the past, placed so that the run ends by the time it
finishes: a 3-hour shift at 60x that starts at 09:00 on the wall clock runs on a clock
that starts at 06:00 and reaches 09:00 at 09:03, so cycle times, availability and
technician response times read as they would on the line, and whatever the run writes
is already in the past when it is written. ``now()`` is never later than the wall clock:
a run that takes longer than it was placed for reads the wall clock from the moment it
catches up, so nothing on record is ever later than now. A run placed just before
other records is also given a ``limit`` it never reads past.

A clock made with ``running=False`` reads ``origin`` until ``start()``: a simulated line
starts its clock once every station is up, so the line's first state events are stamped
at the run's origin (a shift's start) whatever the start-up took on the wall clock.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta


class Clock:
    """``now()`` = ``origin`` + ``scale`` x wall seconds since ``start()``, capped at the
    wall clock and at ``limit``. ``Clock()`` is the wall clock."""

    def __init__(
        self,
        scale: float = 1.0,
        origin: datetime | None = None,
        *,
        running: bool = True,
        limit: datetime | None = None,
    ) -> None:
        if scale <= 0:
            raise ValueError(f"clock scale must be positive, got {scale}")
        self.scale = scale
        self._wall0: float | None = None
        self._origin = origin or datetime.now(UTC)
        self._limit = limit
        if running:
            self.start()

    @property
    def origin(self) -> datetime:
        return self._origin

    @property
    def limit(self) -> datetime | None:
        return self._limit

    def start(self) -> None:
        """Simulated time leaves ``origin`` now (again, if it was already running)."""
        self._wall0 = time.time()

    def now(self) -> datetime:
        wall = time.time()
        if self._wall0 is None:
            sim = self._origin
        else:
            sim = self._origin + timedelta(seconds=(wall - self._wall0) * self.scale)
        sim = min(sim, datetime.fromtimestamp(wall, UTC))
        return sim if self._limit is None else min(sim, self._limit)

    def wall_s(self, sim_s: float) -> float:
        """How many wall seconds ``sim_s`` simulated seconds take while running at scale."""
        return sim_s / self.scale

    def _wall_until(self, when: datetime) -> float | None:
        """Wall seconds until ``now()`` reaches ``when``; None while stopped or when it
        never will (past ``limit``)."""
        if self._wall0 is None or (self._limit is not None and when > self._limit):
            return None
        sim_at = self._wall0 + (when - self._origin).total_seconds() / self.scale
        return max(sim_at, when.timestamp()) - time.time()

    async def sleep(self, sim_s: float) -> None:
        """Wait until ``now()`` has moved ``sim_s`` simulated seconds."""
        if sim_s > 0:
            await self.sleep_until(self.now() + timedelta(seconds=sim_s))

    async def sleep_until(self, when: datetime) -> None:
        """Wait until ``now()`` reads ``when`` or later (a stopped clock waits for start;
        a time past ``limit`` is waited for until cancelled)."""
        while True:
            left = self._wall_until(when)
            if left is not None and left <= 0:
                return
            await asyncio.sleep(0.2 if left is None else min(left, 1.0))
