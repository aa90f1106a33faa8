"""PlcSession against the real PLC simulator over loopback OPC UA."""

from __future__ import annotations

import asyncio

import pytest

from mes_bridge.errors import JobNotCurrent, PlcConnectionError, TagMapError
from mes_bridge.handshake_types import NoticeKind
from mes_bridge.jobs import InputProblem
from mes_bridge.plcsim import LatchedResult, SimStation
from mes_bridge.session import PlcResult, PlcSession
from mes_bridge.tags import Tag, TagMap

from .conftest import ACK_TIMEOUT_S, RUN_TIMEOUT_S, serve, stations


def latched(job, result) -> LatchedResult:
    return LatchedResult(
        job.job_seq,
        job.part_id,
        job.program_no,
        result.result,
        result.error_code,
        result.cycle_time_ms,
    )


async def test_jobs_are_acknowledged_answered_and_latched_as_published(make_sim) -> None:
    st = stations("ST10", "ST20", "ST30", parts=20, program_nos=(1, 2))
    sim = await make_sim(st)
    async with PlcSession(sim.url, {k: v.tags for k, v in st.items()}) as plc:
        runs = await asyncio.wait_for(
            asyncio.gather(*(serve(plc.station(sid), 20) for sid in st)), RUN_TIMEOUT_S
        )
        await sim.wait_completed(20, ACK_TIMEOUT_S)
        for sid, done in zip(st, runs, strict=True):
            assert [j.job_seq for j, _ in done] == list(range(1, 21))
            assert sim.completed(sid) == [latched(j, r) for j, r in done]
            assert {j.program_no for j, _ in done} == {1, 2}
            assert all(j.part_id.startswith("DC1-") for j, _ in done)
            counts = sim.counts(sid)
            assert (counts.requested, counts.ok, counts.nok) == (20, 16, 4)
            assert sim.value(sid, Tag.JOB_ACK_SEQ) == 20 and sim.value(sid, Tag.BUSY) is False
            assert not plc.station(sid).notices()
        assert plc.generation == 1


async def test_bad_part_id_and_program_no_still_come_through_as_jobs(make_sim) -> None:
    st = stations("ST10", parts=5)
    sim = await make_sim(st)
    gs1 = "\x1d01095011010209171719050810ABCD1234\x1d2110"
    sim.inject("ST10", part_id="")
    sim.inject("ST10", part_id="X" * 10_000)
    sim.inject("ST10", program_no=0)
    sim.inject("ST10", part_id="DC1\x07BEL", program_no=-5)
    sim.inject("ST10", part_id=gs1 + " Ä鋳")
    async with PlcSession(sim.url, {"ST10": st["ST10"].tags}) as plc:
        done = await asyncio.wait_for(serve(plc.station("ST10"), 5), RUN_TIMEOUT_S)
    problems = [job.problems for job, _ in done]
    assert problems == [
        (InputProblem.PART_ID_EMPTY,),
        (),
        (InputProblem.PROGRAM_NO_OUT_OF_RANGE,),
        (InputProblem.PROGRAM_NO_OUT_OF_RANGE,),
        (),
    ]
    # What the PLC's String held comes through as it was, for the line's policy to judge.
    long_job = done[1][0]
    assert long_job.part_id == "X" * 10_000 and len(long_job.raw_part_id) < 100
    assert done[3][0].part_id == "DC1\x07BEL"
    assert done[4][0].part_id == gs1 + " Ä鋳"
    assert done[2][0].raw_program_no == "0"
    plc_side = [(r.job_seq, r.result, r.error_code) for r in sim.completed("ST10")]
    assert plc_side == [(j.job_seq, r.result, r.error_code) for j, r in done]
    assert [r.result for r in sim.completed("ST10")][:4] == [2, 1, 2, 2]
    assert sim.completed("ST10")[1].part_id == "X" * 10_000  # the PLC's value, untouched


async def test_a_siemens_style_tag_map_drives_the_same_handshake(make_sim) -> None:
    uri = "http://www.siemens.com/simatic-s7-opcua"
    tags = TagMap(nodes={t: f'nsu={uri};s="DB_Cell01"."{t.value}"' for t in Tag})
    st = {"ST10": SimStation(tags=tags, parts=3)}
    sim = await make_sim(st)
    async with PlcSession(sim.url, {"ST10": tags}) as plc:
        done = await asyncio.wait_for(serve(plc.station("ST10"), 3), RUN_TIMEOUT_S)
    assert sim.completed("ST10") == [latched(j, r) for j, r in done]


@pytest.mark.parametrize(
    ("sim_kw", "tags", "message"),
    [
        (
            {"omit": frozenset({Tag.RESULT_SEQ})},
            None,
            r"station ST10, tag ResultSeq, node 's=TL.ST10.ResultSeq': not found on the PLC "
            r"\(BadNodeIdUnknown\)",
        ),
        (
            {"type_overrides": {Tag.JOB_SEQ: "Int32", Tag.PART_ID: "Double"}},
            None,
            r"(?s)tag JobSeq, node 's=TL.ST10.JobSeq': data type is Int32, expected UInt32"
            r".*tag PartId.*data type is Double, expected String",
        ),
        (
            {},
            TagMap(namespace_uri="urn:not-there", prefix="TL.ST10"),
            r"station ST10, tag JobSeq: node 's=TL.ST10.JobSeq': namespace 'urn:not-there' is "
            r"not on the server",
        ),
    ],
)
async def test_a_tag_map_that_does_not_fit_the_plc_is_a_clear_error(
    make_sim, sim_kw, tags, message
) -> None:
    st = stations("ST10", parts=0, **sim_kw)
    sim = await make_sim(st)
    with pytest.raises(TagMapError, match=message):
        async with PlcSession(sim.url, {"ST10": tags or st["ST10"].tags}):
            pass


async def test_an_unreachable_plc_is_a_clear_error_after_the_deadline(make_sim) -> None:
    sim = await make_sim(stations("ST10", parts=0))
    url = sim.url
    await sim.stop_server()
    with pytest.raises(PlcConnectionError, match=r"unreachable: \d+ attempts"):
        async with PlcSession(url, {"ST10": stations("ST10")["ST10"].tags}, connect_deadline_s=1.0):
            pass


async def test_heartbeats_and_cell_state_reach_the_other_side(make_sim) -> None:
    st = stations("ST10", "ST20", parts=0)
    sim = await make_sim(st, heartbeat_s=0.2)
    async with PlcSession(sim.url, {k: v.tags for k, v in st.items()}, heartbeat_s=0.2) as plc:
        await plc.station("ST20").set_cell_state(6)
        assert await sim.wait_for("ST20", Tag.CELL_STATE, lambda v: v == 6, ACK_TIMEOUT_S) == 6
        for sid in st:
            await sim.wait_for(sid, Tag.HEARTBEAT_CELL, lambda v: v >= 2, ACK_TIMEOUT_S)
        assert sim.value("ST10", Tag.CELL_STATE) == 0
        first = sim.value("ST10", Tag.HEARTBEAT_PLC)
        await sim.wait_for("ST10", Tag.HEARTBEAT_PLC, lambda v, f=first: v != f, ACK_TIMEOUT_S)
        ch = plc.station("ST10")
        age = ch.plc_heartbeat_age()
        assert age is not None and age >= 0 and ch.plc_alive(stale_after_s=RUN_TIMEOUT_S)
        with pytest.raises(ValueError, match="Int32"):
            await ch.set_cell_state(2**40)
        with pytest.raises(KeyError, match="serves"):
            plc.station("ST99")


async def test_a_gap_and_a_counter_reset_on_the_wire_are_visible(make_sim) -> None:
    st = stations("ST10", parts=0)  # the test plays the PLC program by hand
    sim = await make_sim(st)

    async def plc_requests(seq: int) -> None:
        await sim.plc_write("ST10", Tag.PART_ID, f"DC1-2611-{seq:06d}")
        await sim.plc_write("ST10", Tag.PROGRAM_NO, 1)
        await sim.plc_write("ST10", Tag.JOB_SEQ, seq)

    async with PlcSession(sim.url, {"ST10": st["ST10"].tags}) as plc:
        ch = plc.station("ST10")
        await plc_requests(1)
        first = await asyncio.wait_for(ch.next_job(), RUN_TIMEOUT_S)
        await ch.accept(first)
        await ch.publish_result(first, PlcResult(1, 0, 60_000))
        assert sim.value("ST10", Tag.RESULT_SEQ) == 1  # written before publish returned
        await sim.plc_write("ST10", Tag.RESULT_ACK_SEQ, 1)
        assert await ch.wait_result_ack(first, ACK_TIMEOUT_S)

        await plc_requests(4)
        jumped = await asyncio.wait_for(ch.next_job(), RUN_TIMEOUT_S)
        assert (jumped.job_seq, jumped.skipped, jumped.part_id) == (4, 2, "DC1-2611-000004")
        await ch.accept(jumped)

        await plc_requests(2)  # backwards: the PLC restarted its counter
        after_reset = await asyncio.wait_for(ch.next_job(), RUN_TIMEOUT_S)
        assert after_reset.job_seq == 2 and after_reset.counter_reset
        with pytest.raises(JobNotCurrent, match="job 4"):
            await ch.publish_result(jumped, PlcResult(1, 0, 1))
        kinds = [n.kind for n in ch.notices()]
    assert kinds == [NoticeKind.GAP, NoticeKind.COUNTER_RESET]
