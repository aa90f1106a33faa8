"""``Signal``: the one way anything in the bridge or the simulator waits for a change.

A waiter names the condition it needs and re-checks it whenever the owner of the state
fires the signal; nothing polls. Used by the client session, its station channels and the
PLC simulator, which share nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable


class Signal:
    """Wakes every waiter when something changed; waiters re-check their own condition."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float | None) -> None:
        """Return at the next ``fire`` or after ``timeout`` seconds, whichever is first."""
        event = self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    async def until(
        self,
        cond: Callable[[], bool],
        timeout: float | None,
        failure: Callable[[], BaseException | None],
    ) -> bool:
        """Wait until ``cond()`` holds (True) or ``timeout`` passes (False).

        Raises what ``failure()`` returns as soon as it returns something.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            err = failure()
            if err is not None:
                raise err
            if cond():
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            await self.wait(remaining)
