"""Natural batching of write requests: what leaves together, and what never splits."""

from __future__ import annotations

import asyncio

import pytest
from asyncua import ua

from mes_bridge.batcher import WriteBatcher

GOOD, BAD = ua.StatusCode(), ua.StatusCode(ua.StatusCodes.BadOutOfRange)


class Plc:
    """Answers each request when told to; values starting with "x" are refused."""

    def __init__(self) -> None:
        self.requests: list[list[str]] = []
        self.release = asyncio.Event()
        self.fail: BaseException | None = None

    async def send(self, items: list[str]) -> list[ua.StatusCode]:
        self.requests.append(items)
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return [BAD if i.startswith("x") else GOOD for i in items]


def refused(bad: list[tuple[str, ua.StatusCode]]) -> ValueError:
    return ValueError(",".join(i for i, _ in bad))


async def test_steps_gather_while_a_request_is_in_flight_and_are_never_split() -> None:
    plc = Plc()
    batcher = WriteBatcher(plc.send, refused, max_items=4)
    first = asyncio.create_task(batcher.submit(["a1"]))
    await asyncio.sleep(0)  # the first request leaves at once
    waiting = [
        asyncio.create_task(batcher.submit(step))
        for step in (["b1", "b2"], ["c1", "x2"], ["d1", "d2", "d3", "d4", "d5"])
    ]
    await asyncio.sleep(0)
    plc.release.set()
    await first
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert plc.requests == [["a1"], ["b1", "b2", "c1", "x2"], ["d1", "d2", "d3", "d4", "d5"]]
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ValueError) and str(results[1]) == "x2"  # only its step
    await batcher.close(ConnectionError("closed"))


async def test_a_lost_connection_fails_every_step_of_the_request_and_close_fails_the_rest() -> None:
    plc = Plc()
    plc.fail = ConnectionError("transport lost")
    batcher = WriteBatcher(plc.send, refused, max_items=10)
    in_flight = [asyncio.create_task(batcher.submit([s])) for s in ("a", "b")]
    await asyncio.sleep(0)
    plc.release.set()
    for task in in_flight:
        with pytest.raises(ConnectionError, match="transport lost"):
            await task
    plc.release.clear()
    stuck = asyncio.create_task(batcher.submit(["c"]))
    queued = asyncio.create_task(batcher.submit(["d"]))
    await asyncio.sleep(0)
    await batcher.close(ConnectionError("link closed"))
    for task in (stuck, queued):
        with pytest.raises(ConnectionError, match="link closed"):
            await task
    with pytest.raises(ConnectionError, match="link closed"):
        await batcher.submit(["e"])
