"""The PLC simulator's own contract: CLI entry, injection limits, endpoint checks, parts
flowing from station to station, part ids unique across runs."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from mes_bridge.plcsim import PlcSimulator, SimCounts, SimStation, run_plcsim
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
    # <prefix>-<run: UTC start time, YYMMDD-hhmmss>-<serial>
    assert isinstance(part, str) and re.fullmatch(r"DC1-\d{6}-\d{6}-000001", part), part
    assert sim.value("ST10", Tag.PROGRAM_NO) == 7


def flow(*ids: str, **kw: Any) -> dict[str, SimStation]:
    """Stations that pass their parts on in the order given."""
    st = stations(*ids, **kw)
    return {
        sid: cfg.model_copy(update={"upstream": up})
        for (sid, cfg), up in zip(st.items(), [None, *ids[:-1]], strict=True)
    }


async def test_a_casting_flows_through_the_stations_under_one_id(make_sim) -> None:
    st = flow("ST10", "ST20", "ST30", parts=4)
    sim = await make_sim(st, run_id="R1")
    sim.inject("ST10", part_id="\x1d0109501101020917\x1d21Ä")  # a scanned code names the part
    sim.inject("ST20", program_no=3)  # a value for one station only
    async with PlcSession(sim.url, {k: v.tags for k, v in st.items()}) as plc:
        await asyncio.wait_for(
            asyncio.gather(*(serve(plc.station(s), 4) for s in st)), RUN_TIMEOUT_S
        )
    routes = {sid: [r.part_id for r in sim.completed(sid)] for sid in st}
    assert routes["ST10"] == routes["ST20"] == routes["ST30"]
    assert routes["ST10"] == [
        "\x1d0109501101020917\x1d21Ä",
        "DC1-R1-000002",
        "DC1-R1-000003",
        "DC1-R1-000004",
    ]
    assert [r.program_no for r in sim.completed("ST20")] == [3, 1, 1, 1]
    # A part enters a station only after its result at the one before was latched.
    for up, down in (("ST10", "ST20"), ("ST20", "ST30")):
        for left, entered in zip(sim.timings(up), sim.timings(down), strict=True):
            assert left.t_result is not None and entered.t_job > left.t_result


async def test_a_full_conveyor_blocks_the_station_before_it(make_sim) -> None:
    st = flow("ST10", "ST20")
    st["ST10"] = st["ST10"].model_copy(update={"buffer": 2})
    sim = await make_sim(st)
    async with PlcSession(sim.url, {k: v.tags for k, v in st.items()}) as plc:
        # ST20 takes the first part and waits for its cell; two more fill the conveyor.
        await asyncio.wait_for(serve(plc.station("ST10"), 3), RUN_TIMEOUT_S)
        with pytest.raises(TimeoutError):
            await sim.wait_for("ST10", Tag.JOB_SEQ, lambda v: v == 4, 2.0)
        assert sim.counts("ST10").requested == 3
        await asyncio.wait_for(serve(plc.station("ST20"), 1), RUN_TIMEOUT_S)
        await sim.wait_for("ST10", Tag.JOB_SEQ, lambda v: v == 4, RUN_TIMEOUT_S)


async def test_run_plcsim_with_flowing_parts_ends_once_the_last_station_did_its_parts() -> None:
    st = flow("ST10", "ST20", parts=2)
    ready: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(run_plcsim(st, FREE_PORT_URL, on_ready=ready.put_nowait))
    url = await asyncio.wait_for(ready.get(), RUN_TIMEOUT_S)
    async with PlcSession(url, {k: v.tags for k, v in st.items()}) as plc:
        await asyncio.wait_for(
            asyncio.gather(*(serve(plc.station(s), 2) for s in st)), RUN_TIMEOUT_S
        )
        counts = await asyncio.wait_for(task, RUN_TIMEOUT_S)
    assert counts == {"ST10": SimCounts(2, 2, 0), "ST20": SimCounts(2, 2, 0)}


async def test_part_ids_of_two_runs_never_meet(make_sim) -> None:
    first = await make_sim(stations("ST10", parts=2), run_id="260301-060000")
    second = await make_sim(stations("ST10", parts=2), run_id="260301-060001")
    for sim in (first, second):
        await sim.wait_for("ST10", Tag.JOB_SEQ, lambda v: v == 1, RUN_TIMEOUT_S)
    assert first.value("ST10", Tag.PART_ID) == "DC1-260301-060000-000001"
    assert second.value("ST10", Tag.PART_ID) == "DC1-260301-060001-000001"


def test_bad_simulator_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match=r"opc\.tcp://host:port/path"):
        PlcSimulator(stations("ST10"), "opc.tcp://127.0.0.1/plc")
    sim = PlcSimulator(stations("ST10"), FREE_PORT_URL)
    with pytest.raises(ValueError, match="Int16"):
        sim.inject("ST10", program_no=40_000)
    with pytest.raises(ValueError, match="run_id 'a b'"):
        PlcSimulator(stations("ST10"), FREE_PORT_URL, run_id="a b")
    with pytest.raises(ValueError, match="station ST20: upstream 'ST99' is not a station"):
        PlcSimulator(flow("ST10", "ST20") | stations("ST20", upstream="ST99"), FREE_PORT_URL)
    with pytest.raises(ValueError, match="circle: ST10 -> ST20 -> ST10"):
        PlcSimulator(flow("ST10", "ST20") | stations("ST10", upstream="ST20"), FREE_PORT_URL)
