"""Fixtures for loopback tests: a real PLC simulator (asyncua server) on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from mes_bridge.plcsim import PlcSimulator, SimStation, default_tag_map
from mes_bridge.session import PlcJob, PlcResult, StationChannel

FREE_PORT_URL = "opc.tcp://127.0.0.1:0/intern-cells/plc"
# Generous: the machine is shared with other test runs and training jobs.
ACK_TIMEOUT_S = 30.0
RUN_TIMEOUT_S = 120.0


def stations(*ids: str, **kw: Any) -> dict[str, SimStation]:
    """Simulator stations with the default layout under prefix ``TL.<id>``."""
    return {sid: SimStation(tags=default_tag_map(f"TL.{sid}"), **kw) for sid in ids}


def result_for(job: PlcJob) -> PlcResult:
    """What a test cell answers: OK for good input, NOK 900+problem index otherwise."""
    if not job.valid:
        return PlcResult(2, 900 + len(job.problems), 0)
    return PlcResult(
        1 if job.job_seq % 5 else 2, 0 if job.job_seq % 5 else 42, 60_000 + job.job_seq
    )


async def serve(
    ch: StationChannel,
    n: int,
    between: Callable[[str, PlcJob], Awaitable[None]] | None = None,
) -> list[tuple[PlcJob, PlcResult]]:
    """Run ``n`` jobs through the handshake like a cell task; ``between`` hooks each step."""
    done: list[tuple[PlcJob, PlcResult]] = []
    for _ in range(n):
        job = await ch.next_job()
        await ch.accept(job)
        if between is not None:
            await between("accepted", job)
        result = result_for(job)
        await ch.publish_result(job, result)
        if between is not None:
            await between("published", job)
        assert await ch.wait_result_ack(job, ACK_TIMEOUT_S), f"no ResultAckSeq for {job}"
        done.append((job, result))
    return done


@pytest.fixture
async def make_sim() -> AsyncIterator[Callable[..., Awaitable[PlcSimulator]]]:
    """Start simulators on free ports; all are stopped at teardown."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(st: dict[str, SimStation], **kw: Any) -> PlcSimulator:
            return await stack.enter_async_context(PlcSimulator(st, FREE_PORT_URL, **kw))

        yield make


async def eventually(cond: Callable[[], bool], what: str, timeout: float = ACK_TIMEOUT_S) -> None:
    """Poll ``cond`` until it holds; ``AssertionError`` naming ``what`` after ``timeout``."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)
