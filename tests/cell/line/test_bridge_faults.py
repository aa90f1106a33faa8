"""PLC faults on real OPC UA through the whole cell: the PLC killed mid-job ten times, the
connection cut between the result and ResultSeq, a cold restart that resets the PLC's
counters, and values of the wrong type or range. Each test ends with the same check: the
jobs the PLC completed are the job rows, nothing is recorded twice, no job ran twice.

Real parts throughout (see ``harness``): the PLC simulator (asyncua server on loopback),
the orchestrator with its bridge, robot worker processes on Redis, PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from asyncua import ua

from cell.record import models as m
from mes_bridge.plcsim import LatchedResult, PlcSimulator
from mes_bridge.tags import Tag
from robot.fence import record_key
from robot.jobs import ErrorCode
from tests.cell.harness import Running, running_line, sample_line
from tests.conftest import make_url_db

pytestmark = pytest.mark.slow
SCALE = 40.0  # a ~60 s cycle takes ~1.5 s of wall time: long enough to be interrupted
WAIT_S = 120.0  # generous: the machine is shared
SIEMENS = "http://www.siemens.com/simatic-s7-opcua"
OWN_REDIS_DBS = range(10, 16)


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """A Redis database of these tests' own, emptied before and after.

    Other test runs on a shared machine use the common test database at the same time;
    the count of run-once guard keys below must see this test's keys and no others'.
    The first empty database of 10-15 is taken.
    """
    for db in OWN_REDIS_DBS:
        url = make_url_db(redis_server_url, db)
        client = redis.Redis.from_url(url)
        try:
            if client.dbsize() == 0:
                client.set("intern:test:owner", "test_bridge_faults", ex=3600)
                break
        finally:
            client.close()
    else:
        pytest.fail(f"no empty Redis database among {list(OWN_REDIS_DBS)} for this test")
    yield url
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def executed_jobs(redis_url: str) -> list[tuple[str, int, int]]:
    """(station, epoch, JobSeq) of every run a worker claimed (``robot.fence``).

    A retry of a job (``...:2``) counts as the same job; a job key is claimed at most
    once, so a job run twice shows as two keys for one part.
    """
    client = redis.Redis.from_url(redis_url)
    try:
        out = []
        for key in client.scan_iter(record_key("*")):
            if client.type(key) != b"hash":
                continue  # a claim key
            if client.hget(key, "state") not in (b"claimed", b"done", b"lost"):
                continue  # issued or revoked: never touched by a robot
            job_key = key.decode().removeprefix(record_key(""))
            station, epoch, seq, *_retry = job_key.split(":")
            out.append((station, int(epoch), int(seq)))
        return out
    finally:
        client.close()


def assert_plc_matches_record(
    run: Running, redis_url: str, latched: dict[str, list[LatchedResult]], *, given_up: int = 0
) -> list[m.Job]:
    """Every job the PLC latched is one row with the latched result; the rows the PLC did
    not latch are at most ``given_up`` jobs the PLC abandoned in a cold restart; no part
    is on record twice; every robot run belongs to exactly one row."""
    rows = [r for r in run.rows() if r.station_id in latched]
    by_key = {(r.station_id, r.epoch, r.job_seq): r for r in rows}
    assert len(by_key) == len(rows), "a job recorded twice"
    parts = [r.part_id for r in rows if r.part_id is not None]
    assert len(parts) == len(set(parts)), "a part recorded twice"
    plc_keys = set()
    for sid, results in latched.items():
        for res in results:
            key = (sid, res.plc_epoch, res.job_seq)
            plc_keys.add(key)
            row = by_key.get(key)
            assert row is not None, f"{key} latched by the PLC but not on record"
            assert (1 if row.ok else 2, row.error_code, row.cycle_time_ms) == (
                res.result,
                res.error_code,
                res.cycle_time_ms,
            ), key
            if row.part_id is not None:
                assert row.part_id == res.part_id, key
    extra = set(by_key) - plc_keys
    assert len(extra) <= given_up, f"on record but never latched by the PLC: {sorted(extra)}"
    runs = executed_jobs(redis_url)
    assert len(runs) == len(set(runs)), "a job ran twice"
    robot_rows = {k for k, r in by_key.items() if r.robot_id is not None}
    assert set(runs) == robot_rows, "robot runs and recorded robot jobs differ"
    return rows


def in_flight(run: Running, sid: str) -> bool:
    """The PLC shows a job acknowledged and not yet answered: the robot is at work."""
    seq = run.plc(sid, Tag.JOB_SEQ)
    return seq != 0 and run.plc(sid, Tag.JOB_ACK_SEQ) == seq != run.plc(sid, Tag.RESULT_SEQ)


async def settle(run: Running, sids: tuple[str, ...]) -> None:
    """Wait until no station has a job in flight, so that stopping drains little.

    Compare the record with ``run.sim.completed`` only after the line has stopped: until
    then the PLC keeps asking for parts and the cell keeps answering them.
    """
    await run.until(
        lambda: all(run.plc(s, Tag.JOB_ACK_SEQ) == run.plc(s, Tag.RESULT_SEQ) for s in sids),
        WAIT_S,
        "no job in flight",
    )


async def test_the_plc_killed_mid_job_ten_times_loses_and_doubles_nothing(
    tmp_path: Path,
    make_database: Callable[[], str],
    redis_url: str,
    workers,
) -> None:
    line, cfg = sample_line(tmp_path, stations=("ST30",))
    workers(cfg, SCALE).start("R3")
    async with running_line(
        line, make_database(), redis_url, tmp_path, scale=SCALE, parts=None
    ) as run:
        kills: list[object] = []
        for _ in range(10):
            await run.until(
                lambda: in_flight(run, "ST30") and run.plc("ST30", Tag.JOB_SEQ) not in kills,
                WAIT_S,
                "a job in flight",
            )
            kills.append(run.plc("ST30", Tag.JOB_SEQ))
            await run.sim.restart(kill=True, down_s=0.3)  # power cut, memory retained
        done = len(kills) + 1
        await run.until(
            lambda: len(run.sim.completed("ST30")) >= done,
            WAIT_S,
            "the line running on after the last kill",
        )
        await settle(run, ("ST30",))
    latched = {"ST30": run.sim.completed("ST30")}
    assert len(set(kills)) == 10
    rows = assert_plc_matches_record(run, redis_url, latched)
    # Each killed job finished normally: the robot's result was kept and delivered.
    killed = [r for r in rows if r.job_seq in kills]
    assert len(killed) == 10 and all(r.robot_id == "R3" for r in killed)
    assert not [r.job_seq for r in killed if r.error_code == ErrorCode.INTERRUPTED]


async def test_a_siemens_style_plc_cut_between_result_and_result_seq_then_cold_restarted(
    tmp_path: Path,
    make_database: Callable[[], str],
    redis_url: str,
    workers,
) -> None:
    def siemens(data: dict) -> None:
        for st in data["stations"]:
            st["tags"] = {
                "namespace_uri": SIEMENS,
                "pattern": f'"DB_{st["id"]}"."{{tag}}"',
                "nodes": {"HeartbeatPLC": "nsu=" + SIEMENS + ';s="DB_Common"."Life"'},
            }

    line, cfg = sample_line(tmp_path, siemens, stations=("ST30",))
    assert line.station("ST30").tags.resolved()[Tag.JOB_SEQ] == 's="DB_ST30"."JobSeq"'
    workers(cfg, SCALE).start("R3")
    cuts: list[object] = []

    def cut_after_the_result(sim: PlcSimulator) -> None:
        def hook(sid: str, tag: Tag, value: object) -> None:
            seq = sim.value(sid, Tag.JOB_SEQ)
            # CycleTimeMs ends the result write; ResultSeq would be the next request.
            if tag is Tag.CYCLE_TIME_MS and seq in (2, 3, 4) and seq not in cuts:
                cuts.append(seq)
                sim.drop_connections()

        sim.on_client_write(hook)

    async with running_line(
        line,
        make_database(),
        redis_url,
        tmp_path,
        scale=SCALE,
        parts=None,
        prepare=cut_after_the_result,
    ) as run:
        await run.until(
            lambda: len(run.sim.completed("ST30")) >= 5, WAIT_S, "five parts through three cuts"
        )
        await run.until(lambda: in_flight(run, "ST30"), WAIT_S, "a job in flight")
        abandoned = run.plc("ST30", Tag.JOB_SEQ)
        await run.sim.restart(cold=True)  # the PLC forgets its counters and the open job
        await run.until(
            lambda: sum(r.plc_epoch == 1 for r in run.sim.completed("ST30")) >= 3,
            WAIT_S,
            "three parts after the cold restart",
        )
        await settle(run, ("ST30",))
    latched = {"ST30": run.sim.completed("ST30")}
    assert cuts == [2, 3, 4]
    rows = assert_plc_matches_record(run, redis_url, latched, given_up=1)
    assert {r.epoch for r in rows} == {0, 1}  # the reset opened exactly one new epoch
    first_of_new = min((r for r in rows if r.epoch == 1), key=lambda r: r.job_seq)
    assert first_of_new.job_seq == 1
    # The job open at the cold restart is on record (the robot worked on the part) but
    # the PLC never latched it; it is the last of the old epoch.
    assert max(r.job_seq for r in rows if r.epoch == 0) == abandoned
    assert abandoned not in {r.job_seq for r in latched["ST30"] if r.plc_epoch == 0}


async def test_wrong_types_bad_part_ids_nan_and_negative_values_end_nok_and_run_nothing(
    tmp_path: Path,
    make_database: Callable[[], str],
    redis_url: str,
    workers,
) -> None:
    line, cfg = sample_line(tmp_path, stations=("ST30",))
    workers(cfg, SCALE).start("R3")
    nan = ua.Variant(float("nan"), ua.VariantType.Double)
    expected = [  # per part, in order: the error code its job must end with (0: OK)
        (dict(part_id=""), ErrorCode.EMPTY_PART_ID),
        (dict(part_id="X" * 10_000), ErrorCode.INVALID_PART_ID),
        (
            dict(raw={Tag.PART_ID: ua.Variant(4711, ua.VariantType.Int32)}),
            ErrorCode.INVALID_PART_ID,
        ),
        (dict(raw={Tag.PROGRAM_NO: nan}), ErrorCode.UNKNOWN_PROGRAM),
        (dict(program_no=-5), ErrorCode.UNKNOWN_PROGRAM),
        # garbage JobSeq before the real one, garbage ResultAckSeq before the real one:
        (dict(raw={Tag.JOB_SEQ: ua.Variant(-1, ua.VariantType.Int32), Tag.RESULT_ACK_SEQ: nan}), 0),
        (dict(raw={Tag.JOB_SEQ: ua.Variant("7", ua.VariantType.String)}), 0),
        ({}, 0),
    ]

    def inject(sim: PlcSimulator) -> None:
        for values, _ in expected:
            sim.inject("ST30", **values)

    async with running_line(
        line, make_database(), redis_url, tmp_path, scale=SCALE, parts=None, prepare=inject
    ) as run:
        await run.until(
            lambda: len(run.sim.completed("ST30")) >= len(expected),
            WAIT_S,
            "every injected part answered",
        )
        await settle(run, ("ST30",))
    latched = {"ST30": run.sim.completed("ST30")}
    rows = assert_plc_matches_record(run, redis_url, latched)
    by_seq = {r.job_seq: r for r in rows}
    bad_input = {code for _, code in expected if code}
    for seq, (values, code) in enumerate(expected, 1):
        row = by_seq[seq]
        if code:  # ended NOK with the input's error, and never reached a robot
            assert (row.ok, row.error_code, row.robot_id) == (False, code, None), (seq, values)
        else:  # the robot did the part (its own outcome may be OK or NOK)
            assert row.robot_id == "R3" and row.error_code not in bad_input, (seq, values)
    assert by_seq[1].part_id is None and by_seq[2].part_id is None
