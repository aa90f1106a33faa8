"""The PLC simulator's own contract: CLI entry, injection limits, endpoint checks."""

from __future__ import annotations

import asyncio

import pytest

from mes_bridge.plcsim import PlcSimulator, SimCounts, run_plcsim
from mes_bridge.session import PlcSession
from mes_bridge.tags import Tag

from .conftest import FREE_PORT_URL, RUN_TIMEOUT_S, serve, stations


async def test_run_plcsim_serves_until_every_station_did_its_parts() -> None:
    st = stations("ST10", "ST20", parts=3)
    ready: asyncio.Queue[str] = asyncio.Queue()
    sim_task = asyncio.create_task(run_plcsim(st, FREE_PORT_URL, on_ready=ready.put_nowait))
    url = await asyncio.wait_for(ready.get(), RUN_TIMEOUT_S)
    assert not url.endswith(":0/intern-cells/plc")
    async with PlcSession(url, {k: v.tags for k, v in st.items()}) as plc:
        await asyncio.wait_for(
            asyncio.gather(*(serve(plc.station(s), 3) for s in st)), RUN_TIMEOUT_S
        )
        counts = await asyncio.wait_for(sim_task, RUN_TIMEOUT_S)
    assert counts == {"ST10": SimCounts(3, 3, 0), "ST20": SimCounts(3, 3, 0)}


async def test_run_plcsim_stops_when_asked() -> None:
    stop = asyncio.Event()
    ready: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(
        run_plcsim(stations("ST10"), FREE_PORT_URL, stop=stop, on_ready=ready.put_nowait)
    )
    await asyncio.wait_for(ready.get(), RUN_TIMEOUT_S)
    stop.set()
    counts = await asyncio.wait_for(task, RUN_TIMEOUT_S)
    assert counts["ST10"].requested == 1 and counts["ST10"].ok == 0  # first part still open


async def test_the_simulator_writes_a_part_before_its_job_seq(make_sim) -> None:
    sim = await make_sim(stations("ST10", parts=1, program_nos=(7,)))
    await sim.wait_for("ST10", Tag.JOB_SEQ, lambda v: v == 1, RUN_TIMEOUT_S)
    part = sim.value("ST10", Tag.PART_ID)
    assert isinstance(part, str) and part.startswith("DC1-") and len(part) == 15
    assert sim.value("ST10", Tag.PROGRAM_NO) == 7


def test_bad_simulator_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match=r"opc\.tcp://host:port/path"):
        PlcSimulator(stations("ST10"), "opc.tcp://127.0.0.1/plc")
    sim = PlcSimulator(stations("ST10"), FREE_PORT_URL)
    with pytest.raises(ValueError, match="Int16"):
        sim.inject("ST10", program_no=40_000)
