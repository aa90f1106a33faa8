"""Losing the PLC connection: reconnect, resync, and never a job twice or a result lost."""

from __future__ import annotations

import asyncio

import pytest

from mes_bridge.errors import JobNotCurrent, PlcConnectionError
from mes_bridge.handshake_types import NoticeKind
from mes_bridge.jobs import PlcResult
from mes_bridge.plcsim import LatchedResult
from mes_bridge.session import PlcJob, PlcSession

from .conftest import ACK_TIMEOUT_S, RUN_TIMEOUT_S, serve, stations

FAST_RETRY = {"reconnect_max_delay_s": 0.5, "reconnect_deadline_s": 120.0}


def latched(done: list[tuple[PlcJob, PlcResult]]) -> list[LatchedResult]:
    return [
        LatchedResult(j.job_seq, j.part_id, j.program_no, r.result, r.error_code, r.cycle_time_ms)
        for j, r in done
    ]


async def test_ten_plc_restarts_mid_job_and_idle_lose_nothing_and_double_nothing(make_sim) -> None:
    st = stations("ST10", "ST20", parts=12)
    sim = await make_sim(st)
    # Nine restarts inside ST10's jobs (after the acknowledgement, after the result) while
    # ST20 keeps working, then one with both stations idle.
    restart_at = {(j, "accepted") for j in (2, 4, 6, 8, 10)} | {
        (j, "published") for j in (3, 5, 7, 9)
    }

    async def between(step: str, job: PlcJob) -> None:
        if job.station_id == "ST10" and (job.job_seq, step) in restart_at:
            await sim.restart()

    async with PlcSession(sim.url, {k: v.tags for k, v in st.items()}, **FAST_RETRY) as plc:
        first = await asyncio.wait_for(
            asyncio.gather(serve(plc.station("ST10"), 10, between), serve(plc.station("ST20"), 10)),
            RUN_TIMEOUT_S,
        )
        await sim.restart(down_s=0.5)
        rest = await asyncio.wait_for(
            asyncio.gather(serve(plc.station("ST10"), 2), serve(plc.station("ST20"), 2)),
            RUN_TIMEOUT_S,
        )
        assert plc.generation >= 11  # ten restarts, each a new connection
        for i, sid in enumerate(st):
            done = first[i] + rest[i]
            assert [j.job_seq for j, _ in done] == list(range(1, 13))
            assert not any(j.resumed or j.counter_reset or j.skipped for j, _ in done)
            assert sim.completed(sid) == latched(done)
            bad = [
                n
                for n in plc.station(sid).notices()
                if n.kind in (NoticeKind.GAP, NoticeKind.REPEAT, NoticeKind.COUNTER_RESET)
            ]
            assert bad == []


async def test_a_cut_connection_reconnects_and_the_result_still_lands(make_sim) -> None:
    st = stations("ST10", parts=4)
    sim = await make_sim(st)
    async with PlcSession(sim.url, {"ST10": st["ST10"].tags}, **FAST_RETRY) as plc:

        async def between(step: str, job: PlcJob) -> None:
            if step == "accepted" and job.job_seq in (2, 3):
                assert sim.drop_connections() == 1  # the bridge's one connection

        done = await asyncio.wait_for(serve(plc.station("ST10"), 4, between), RUN_TIMEOUT_S)
        assert plc.generation >= 3
    assert sim.completed("ST10") == latched(done)


async def test_a_cold_restart_is_a_counter_reset_and_the_open_job_is_not_current(make_sim) -> None:
    st = stations("ST10", parts=None)
    sim = await make_sim(st)
    async with PlcSession(sim.url, {"ST10": st["ST10"].tags}, **FAST_RETRY) as plc:
        ch = plc.station("ST10")
        before = await asyncio.wait_for(serve(ch, 3), RUN_TIMEOUT_S)
        open_job = await asyncio.wait_for(ch.next_job(), RUN_TIMEOUT_S)
        await ch.accept(open_job)
        await sim.restart(cold=True)
        with pytest.raises(JobNotCurrent, match="job 4"):
            await asyncio.wait_for(ch.publish_result(open_job, PlcResult(1, 0, 1)), RUN_TIMEOUT_S)
        after = await asyncio.wait_for(serve(ch, 2), RUN_TIMEOUT_S)
        kinds = [n.kind for n in ch.notices()]
    assert [j.job_seq for j, _ in after] == [1, 2]
    assert after[0][0].counter_reset and not after[1][0].counter_reset
    assert NoticeKind.COUNTER_RESET in kinds
    # The PLC latched the first epoch's three results and the new epoch's two, nothing else.
    assert sim.completed("ST10") == latched(before) + latched(after)


async def test_a_job_acknowledged_before_a_bridge_restart_comes_back_resumed(make_sim) -> None:
    st = stations("ST10", parts=2)
    sim = await make_sim(st)
    tags = {"ST10": st["ST10"].tags}
    async with PlcSession(sim.url, tags) as plc:
        job = await asyncio.wait_for(plc.station("ST10").next_job(), RUN_TIMEOUT_S)
        await plc.station("ST10").accept(job)
    # The bridge process is gone; a new one connects and finds the job unanswered.
    async with PlcSession(sim.url, tags) as plc:
        ch = plc.station("ST10")
        again = await asyncio.wait_for(ch.next_job(), RUN_TIMEOUT_S)
        assert again.resumed and (again.job_seq, again.part_id) == (job.job_seq, job.part_id)
        await ch.publish_result(again, PlcResult(2, 950, 0))  # the cell ends it NOK
        assert await ch.wait_result_ack(again, ACK_TIMEOUT_S)
        nxt = await asyncio.wait_for(serve(ch, 1), RUN_TIMEOUT_S)
    assert not nxt[0][0].resumed and nxt[0][0].job_seq == 2
    assert [(r.job_seq, r.result, r.error_code) for r in sim.completed("ST10")] == [
        (1, 2, 950),
        (2, nxt[0][1].result, nxt[0][1].error_code),
    ]


async def test_past_the_reconnect_deadline_waiting_calls_fail_clearly(make_sim) -> None:
    st = stations("ST10", parts=0)
    sim = await make_sim(st)
    async with PlcSession(
        sim.url, {"ST10": st["ST10"].tags}, reconnect_deadline_s=1.0, reconnect_max_delay_s=0.3
    ) as plc:
        waiting = asyncio.create_task(plc.station("ST10").next_job())
        await sim.stop_server()
        with pytest.raises(PlcConnectionError, match="unreachable"):
            await asyncio.wait_for(waiting, RUN_TIMEOUT_S)
        assert not plc.connected
