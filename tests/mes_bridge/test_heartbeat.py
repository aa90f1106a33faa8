"""Heartbeats both ways: HeartbeatPLC staleness per station, HeartbeatCell only while healthy."""

from __future__ import annotations

import asyncio

from asyncua import ua

from mes_bridge.channel import PlcLiveness
from mes_bridge.handshake_types import NoticeKind
from mes_bridge.plcsim import SimStation, default_tag_map
from mes_bridge.session import PlcSession
from mes_bridge.tags import Tag

from .conftest import RUN_TIMEOUT_S, eventually

FAST = {"heartbeat_s": 0.2, "plc_heartbeat_timeout_s": 1.0, "reconnect_max_delay_s": 0.5}


async def test_a_plc_heartbeat_that_stops_makes_only_that_station_stale(make_sim) -> None:
    st = {
        sid: SimStation(tags=default_tag_map(f"TL.{sid}"), parts=0, heartbeat=beats)
        for sid, beats in (("ST10", True), ("ST20", False))
    }
    sim = await make_sim(st, heartbeat_s=0.2)
    notices = []
    async with PlcSession(
        sim.url, {k: v.tags for k, v in st.items()}, on_notice=notices.append, **FAST
    ) as plc:
        ch10, ch20 = plc.station("ST10"), plc.station("ST20")
        # A fresh connection gives the PLC the full limit before calling it stale.
        assert (
            await ch20.wait_liveness_change(PlcLiveness.ALIVE, RUN_TIMEOUT_S) is PlcLiveness.STALE
        )
        assert not ch20.plc_alive()
        assert ch10.plc_alive(stale_after_s=RUN_TIMEOUT_S)  # its PLC program still beats
        stale = [n for n in notices if n.kind is NoticeKind.PLC_HEARTBEAT_STALE]
        assert [n.station_id for n in stale] == ["ST20"]
        assert stale[0] in ch20.notices()

        # A mistyped value is no beat; the PLC program starting again is.
        await sim.plc_write_raw("ST20", Tag.HEARTBEAT_PLC, ua.Variant(float("nan")))
        await sim.plc_write("ST20", Tag.HEARTBEAT_PLC, 7)
        assert (
            await ch20.wait_liveness_change(PlcLiveness.STALE, RUN_TIMEOUT_S) is PlcLiveness.ALIVE
        )
        await eventually(
            lambda: any(n.kind is NoticeKind.PLC_HEARTBEAT_RESUMED for n in ch20.notices()),
            "a resumed notice",
        )

        # No connection: nothing is known about either PLC program.
        await sim.stop_server()
        for ch in (ch10, ch20):
            assert (
                await ch.wait_liveness_change(PlcLiveness.ALIVE, RUN_TIMEOUT_S)
                is PlcLiveness.DISCONNECTED
            )
            assert ch.plc_heartbeat_age() is None


async def test_the_cell_heartbeat_ticks_only_while_the_session_is_healthy(make_sim) -> None:
    st = {"ST10": SimStation(tags=default_tag_map("TL.ST10"), parts=0)}
    sim = await make_sim(st, heartbeat_s=0.2)
    seen: list[object] = []
    sim.on_client_write(
        lambda sid, tag, value: seen.append(value) if tag is Tag.HEARTBEAT_CELL else None
    )
    async with PlcSession(sim.url, {"ST10": st["ST10"].tags}, **FAST) as plc:
        await eventually(lambda: len(seen) >= 2, "HeartbeatCell ticking")
        assert plc.healthy
        await sim.stop_server()
        await eventually(lambda: not plc.healthy, "the session to notice the loss")
        await asyncio.sleep(1.0)  # about five ticks without a connection
        before = len(seen)
        await sim.start_server()
        await eventually(lambda: plc.healthy, "the session to reconnect", RUN_TIMEOUT_S)
        await eventually(lambda: len(seen) >= before + 2, "HeartbeatCell ticking again")
    # The PLC saw HeartbeatCell go up by one each time, across the outage: ticks while
    # the session was unhealthy were not counted (a cell that was away does not jump).
    first = seen[0]
    assert isinstance(first, int)
    assert seen == list(range(first, first + len(seen)))
