"""The cell's clock: wall time, or simulated time running ``scale`` times faster.

A simulated shift (3 h at the 76 s takt) runs in minutes with every timestamp on record
in shift time, so availability, cycle times and technician response times read as they
would on the line. With ``scale == 1`` it is the wall clock.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta


class Clock:
    """``now()`` advances ``scale`` simulated seconds per wall second from ``origin``."""

    def __init__(self, scale: float = 1.0, origin: datetime | None = None) -> None:
        if scale <= 0:
            raise ValueError(f"clock scale must be positive, got {scale}")
        self.scale = scale
        self._wall0 = time.time()
        self._origin = origin or datetime.fromtimestamp(self._wall0, UTC)

    def now(self) -> datetime:
        return self._origin + timedelta(seconds=(time.time() - self._wall0) * self.scale)

    def wall_s(self, sim_s: float) -> float:
        """How many wall seconds ``sim_s`` simulated seconds take."""
        return sim_s / self.scale

    async def sleep(self, sim_s: float) -> None:
        if sim_s > 0:
            await asyncio.sleep(sim_s / self.scale)

    async def sleep_until(self, when: datetime) -> None:
        await self.sleep((when - self.now()).total_seconds())
