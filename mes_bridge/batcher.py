"""Write requests shared by many stations: natural batching of handshake steps.

When no request is in flight a step goes out at once; while one is, the steps other
stations submit gather and leave together in the next request. A line whose stations
index together (fifty acknowledgements in the same 50 ms) then costs a few requests
instead of fifty, which matters on a PLC that serves requests one by one.

Guarantees: a step (the values of one ``submit``) is never split across requests, so
ResultSeq is never written before its result; steps leave in the order submitted; a
request holds at most ``max_items`` values unless one step alone is larger.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from asyncua import ua

Item = TypeVar("Item")
Send = Callable[[list[Item]], Awaitable[Sequence[ua.StatusCode]]]
Refused = Callable[[list[tuple[Item, ua.StatusCode]]], BaseException]


@dataclass
class _Step(Generic[Item]):
    items: list[Item]
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def __post_init__(self) -> None:
        # Retrieve the outcome even if the caller stopped waiting (it was cancelled):
        # an error nobody awaits any more is not worth a warning.
        self.done.add_done_callback(lambda f: f.cancelled() or f.exception())


class WriteBatcher(Generic[Item]):
    """Sends submitted steps through ``send`` (one write request per call, returning one
    status per value); ``refused`` builds the error for a step with bad statuses."""

    def __init__(self, send: Send[Item], refused: Refused[Item], max_items: int) -> None:
        self._send, self._refused, self._max = send, refused, max_items
        self._queue: list[_Step[Item]] = []
        self._wake = asyncio.Event()
        self._closed: BaseException | None = None
        self._task = asyncio.create_task(self._run(), name="plc-writes")

    async def submit(self, items: list[Item]) -> None:
        """Write ``items`` in one request (shared with other steps); return once the PLC
        answered. Raises what ``refused`` builds for bad statuses, or the request's own
        error (a lost connection) as it was raised."""
        if self._closed is not None:
            raise self._closed
        step: _Step[Item] = _Step(items)
        self._queue.append(step)
        self._wake.set()
        await asyncio.shield(step.done)  # a cancelled caller leaves the others' batch be

    async def close(self, reason: BaseException) -> None:
        """Fail every waiting step with ``reason`` and stop."""
        self._closed = reason
        self._task.cancel()
        # asyncio.wait, not awaiting the task: its CancelledError is not ours, and a
        # cancellation of the caller itself must still get through.
        await asyncio.wait([self._task])
        self._fail(self._queue, reason)
        self._queue = []

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch: list[_Step[Item]] = []
                size = 0
                while self._queue and (not batch or size + len(self._queue[0].items) <= self._max):
                    step = self._queue.pop(0)
                    batch.append(step)
                    size += len(step.items)
                try:
                    statuses = await self._send([i for s in batch for i in s.items])
                except asyncio.CancelledError:
                    self._fail(batch, ConnectionError("PLC link closed"))
                    raise
                except BaseException as exc:  # handed to every step of the request
                    self._fail(batch, exc)
                    continue
                offset = 0
                for step in batch:
                    mine = statuses[offset : offset + len(step.items)]
                    offset += len(step.items)
                    bad = [(i, s) for i, s in zip(step.items, mine, strict=True) if not s.is_good()]
                    if step.done.done():
                        continue
                    if bad:
                        step.done.set_exception(self._refused(bad))
                    else:
                        step.done.set_result(None)

    @staticmethod
    def _fail(steps: list[_Step[Item]], exc: BaseException) -> None:
        for step in steps:
            if not step.done.done():
                step.done.set_exception(exc)
