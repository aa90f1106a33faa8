"""Faults at the PLC on real OPC UA: refused writes, a connection cut between the result
and ResultSeq, values of the wrong type or out of range, and fifty stations at once."""

from __future__ import annotations

import asyncio

import pytest
from asyncua import ua

from mes_bridge.errors import PlcWriteError
from mes_bridge.handshake_types import NoticeKind, Phase
from mes_bridge.jobs import InputProblem, PlcResult
from mes_bridge.plcsim import LatchedResult
from mes_bridge.session import PlcJob, PlcSession
from mes_bridge.tags import Tag

from .conftest import ACK_TIMEOUT_S, RUN_TIMEOUT_S, eventually, serve, stations


def latched(done: list[tuple[PlcJob, PlcResult]]) -> list[LatchedResult]:
    return [
        LatchedResult(j.job_seq, j.part_id, j.program_no, r.result, r.error_code, r.cycle_time_ms)
        for j, r in done
    ]


async def test_a_refused_result_write_does_not_count_as_published(make_sim) -> None:
    st = stations("ST10", parts=2)
    sim = await make_sim(st)
    async with PlcSession(sim.url, {"ST10": st["ST10"].tags}) as plc:
        ch = plc.station("ST10")
        job = await asyncio.wait_for(ch.next_job(), RUN_TIMEOUT_S)
        await ch.accept(job)
        await sim.refuse_writes("ST10", Tag.RESULT_SEQ)  # e.g. a PLC program download
        result = PlcResult(1, 0, 61_000)
        with pytest.raises(
            PlcWriteError,
            match=(
                r"station ST10, tag ResultSeq, node 's=TL.ST10.ResultSeq': writing 1 "
                r"refused \(BadUserAccessDenied\)"
            ),
        ):
            await ch.publish_result(job, result)
        # Not published: the cell may answer again, from its record, like after a restart.
        assert ch.phase is Phase.ACCEPTED
        assert [n.kind for n in ch.notices()] == [NoticeKind.WRITE_REFUSED]
        assert sim.value("ST10", Tag.RESULT_SEQ) == 0
        await sim.refuse_writes("ST10", Tag.CELL_STATE)
        await ch.set_cell_state(6)  # a status the PLC refuses is reported, never raised
        assert ch.notices()[-1].kind is NoticeKind.WRITE_REFUSED
        await sim.refuse_writes("ST10", Tag.RESULT_SEQ, refuse=False)
        await ch.accept(job)
        await ch.publish_result(job, result)
        assert await ch.wait_result_ack(job, ACK_TIMEOUT_S)
        rest = await asyncio.wait_for(serve(ch, 1), RUN_TIMEOUT_S)
    assert sim.completed("ST10") == latched([(job, result), *rest])


async def test_a_connection_cut_between_the_result_and_result_seq_loses_nothing(make_sim) -> None:
    st = stations("ST10", parts=4)
    sim = await make_sim(st)
    cuts: list[int] = []

    def cut_after_the_result(sid: str, tag: Tag, value: object) -> None:
        # CycleTimeMs is the last value of the first result write; ResultSeq comes next.
        seq = sim.value(sid, Tag.JOB_SEQ)
        if tag is Tag.CYCLE_TIME_MS and seq in (2, 3) and seq not in cuts:
            cuts.append(seq)  # type: ignore[arg-type]
            sim.drop_connections()

    sim.on_client_write(cut_after_the_result)
    async with PlcSession(sim.url, {"ST10": st["ST10"].tags}, reconnect_max_delay_s=0.5) as plc:
        done = await asyncio.wait_for(serve(plc.station("ST10"), 4), RUN_TIMEOUT_S)
        assert plc.generation >= 3
    assert cuts == [2, 3]
    assert sim.completed("ST10") == latched(done)
    assert [j.job_seq for j, _ in done] == [1, 2, 3, 4]


async def test_values_of_the_wrong_type_or_range_never_make_a_job_or_an_ack(make_sim) -> None:
    st = stations("ST10", parts=0)  # the test plays the PLC program
    sim = await make_sim(st)

    async def request(
        seq: int, part: str = "DC1-2611-000001", program: ua.Variant | None = None
    ) -> None:
        await sim.plc_write("ST10", Tag.PART_ID, part)
        if program is None:
            await sim.plc_write("ST10", Tag.PROGRAM_NO, 1)
        else:
            await sim.plc_write_raw("ST10", Tag.PROGRAM_NO, program)
        await sim.plc_write("ST10", Tag.JOB_SEQ, seq)

    async with PlcSession(sim.url, {"ST10": st["ST10"].tags}) as plc:
        ch = plc.station("ST10")

        def unreadable() -> int:
            return sum(n.kind is NoticeKind.UNREADABLE for n in ch.notices())

        for n, garbage in enumerate(
            (
                ua.Variant("2", ua.VariantType.String),
                ua.Variant(-1, ua.VariantType.Int32),
                ua.Variant(float("nan"), ua.VariantType.Double),
            ),
            1,
        ):
            await sim.plc_write_raw("ST10", Tag.JOB_SEQ, garbage)
            await eventually(lambda n=n: unreadable() == n, f"unreadable JobSeq {garbage}")
        await request(1, program=ua.Variant(float("nan"), ua.VariantType.Double))
        first = await asyncio.wait_for(ch.next_job(), RUN_TIMEOUT_S)
        assert first.job_seq == 1 and first.problems == (InputProblem.PROGRAM_NO_NOT_INT,)
        assert first.raw_program_no == "nan"
        await ch.accept(first)
        await ch.publish_result(first, PlcResult(2, 910, 0))
        for garbage in (
            ua.Variant(float("nan"), ua.VariantType.Double),
            ua.Variant(-1, ua.VariantType.Int64),
        ):
            await sim.plc_write_raw("ST10", Tag.RESULT_ACK_SEQ, garbage)
        # A bad JobSeq after them, in the same subscription: once it is seen, so are they.
        await sim.plc_write_raw("ST10", Tag.JOB_SEQ, ua.Variant(None, ua.VariantType.Null))
        await eventually(lambda: unreadable() == 4, "the garbage after the bad acks")
        assert not await ch.wait_result_ack(first, 0)  # garbage is no acknowledgement
        await sim.plc_write("ST10", Tag.RESULT_ACK_SEQ, 1)
        assert await ch.wait_result_ack(first, ACK_TIMEOUT_S)
        await request(2, program=ua.Variant(-5, ua.VariantType.Int16))
        second = await asyncio.wait_for(ch.next_job(), RUN_TIMEOUT_S)
        assert second.problems == (InputProblem.PROGRAM_NO_OUT_OF_RANGE,)
    assert sim.value("ST10", Tag.JOB_ACK_SEQ) == 1  # only the real job was acknowledged


async def test_one_session_serves_fifty_stations_with_two_subscriptions(make_sim) -> None:
    ids = [f"ST{n:03d}" for n in range(1, 51)]
    st = stations(*ids, parts=2)
    sim = await make_sim(st)
    async with PlcSession(sim.url, {k: v.tags for k, v in st.items()}) as plc:
        # Grouped by purpose, not by station: handshake inputs fast, heartbeats slow.
        assert plc.subscriptions() == [(50.0, 4 * 50), (500.0, 50)]
        runs = await asyncio.wait_for(
            asyncio.gather(*(serve(plc.station(sid), 2) for sid in ids)), RUN_TIMEOUT_S
        )
    for sid, done in zip(ids, runs, strict=True):
        assert sim.completed(sid) == latched(done)
