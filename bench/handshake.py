"""Handshake latency of the bridge against the raw asyncua floor of the same run.

    python bench/handshake.py --jobs 200 [--interval-ms 50] [--stations 1]

Measured at the PLC side (the simulator's server, ``time.perf_counter`` in one process):

  (a) PLC writes JobSeq -> the cell's JobAckSeq arrives at the PLC
      (subscription notification, bridge processing, cell task, acknowledgement write);
  (b) the cell has its result -> ResultSeq arrives at the PLC
      (two ordered write requests: Result/ErrorCode/CycleTimeMs, then ResultSeq/Busy).

Floors, on the same server and event loop, with no cell logic:

  subscription round trip: server-side write -> client data-change notification -> the
      handler writes the value back -> write seen at the server (the floor for (a));
  write: one client write request -> seen at the server (a second reference for (b)).

The subscription publishing interval dominates (a) and its floor: a change waits for the
next publish tick. Both use the same interval (``--interval-ms``, default 50 ms, the
session's default: well inside a 76 s takt and cheap for 50 stations), and every change
is started at a random phase of the tick (uniform jitter of one interval) so that neither
side profits from being in step with the publisher.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import time

from asyncua import Client, ua

from mes_bridge.plcsim import PlcSimulator, SimStation, default_tag_map
from mes_bridge.session import PlcJob, PlcResult, PlcSession, StationChannel
from mes_bridge.tags import Tag

WARMUP = 10
PROBE = "PROBE"
GOAL_P99_RATIO = 2.0


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def floors(sim: PlcSimulator, n: int, interval_ms: float) -> tuple[list[float], list[float]]:
    """Raw asyncua: subscription round trips and single client writes, in seconds."""
    ns = 2  # the simulator's namespace is the first one it registers
    seq_node = ua.NodeId(f"TL.{PROBE}.{Tag.JOB_SEQ.value}", ns)
    ack_node = ua.NodeId(f"TL.{PROBE}.{Tag.JOB_ACK_SEQ.value}", ns)
    round_trips: list[float] = []
    writes: list[float] = []
    client = Client(sim.url)
    async with client:
        ack = client.get_node(ack_node)

        class EchoBack:
            async def datachange_notification(self, node: object, val: int, data: object) -> None:
                await ack.write_value(ua.Variant(val, ua.VariantType.UInt32))

        sub = await client.create_subscription(interval_ms, EchoBack())
        await sub.subscribe_data_change(client.get_node(seq_node), sampling_interval=0)
        base = int(sim.value(PROBE, Tag.JOB_SEQ)) + 1  # type: ignore[call-overload]
        for i in range(base, base + n + WARMUP):
            await asyncio.sleep(random.uniform(0, interval_ms / 1000))  # random tick phase
            t0 = time.perf_counter()
            await sim.plc_write(PROBE, Tag.JOB_SEQ, i)
            await sim.wait_for(PROBE, Tag.JOB_ACK_SEQ, lambda v, i=i: v == i, 30)
            seen = sim.written_at(PROBE, Tag.JOB_ACK_SEQ)
            assert seen is not None
            if i >= base + WARMUP:
                round_trips.append(seen - t0)
        await sub.delete()
        for i in range(n + WARMUP):
            value = 1_000_000 + i
            t0 = time.perf_counter()
            await ack.write_value(ua.Variant(value, ua.VariantType.UInt32))
            seen = sim.written_at(PROBE, Tag.JOB_ACK_SEQ)
            assert seen is not None and sim.value(PROBE, Tag.JOB_ACK_SEQ) == value
            if i >= WARMUP:
                writes.append(seen - t0)
    return round_trips, writes


async def cell(ch: StationChannel, n: int, ready: dict[int, float]) -> None:
    """A cell task with no work to do: accept, answer OK at once, wait for the latch."""
    for _ in range(n):
        job: PlcJob = await ch.next_job()
        await ch.accept(job)
        ready[job.job_seq] = time.perf_counter()
        await ch.publish_result(job, PlcResult(1, 0, 1000))
        if not await ch.wait_result_ack(job, 30):
            raise TimeoutError(f"no ResultAckSeq for job {job.job_seq}")


async def measure(sim: PlcSimulator, station_ids: list[str], jobs: int,
                  interval_ms: float) -> tuple[list[float], list[float]]:
    ready: dict[str, dict[int, float]] = {sid: {} for sid in station_ids}
    tags = {sid: default_tag_map(f"TL.{sid}") for sid in station_ids}
    async with PlcSession(sim.url, tags, publishing_interval_ms=interval_ms) as plc:
        await asyncio.gather(*(cell(plc.station(sid), jobs + WARMUP, ready[sid])
                               for sid in station_ids))
    acks, results = [], []
    for sid in station_ids:
        for t in sim.timings(sid):
            if t.job_seq <= WARMUP or t.t_ack is None or t.t_result is None:
                continue
            acks.append(t.t_ack - t.t_job)
            results.append(t.t_result - ready[sid][t.job_seq])
    return acks, results


async def main(jobs: int, interval_ms: float, n_stations: int) -> int:
    station_ids = [f"ST{10 * (i + 1)}" for i in range(n_stations)]
    sim_stations = {sid: SimStation(tags=default_tag_map(f"TL.{sid}"), parts=jobs + WARMUP,
                                    jitter_s=interval_ms / 1000) for sid in station_ids}
    sim_stations[PROBE] = SimStation(tags=default_tag_map(f"TL.{PROBE}"), parts=0)
    async with PlcSimulator(sim_stations, "opc.tcp://127.0.0.1:0/bench") as sim:
        # Floors before and after the measurement, so that drift on a shared machine
        # weighs on both sides alike.
        rt1, wr1 = await floors(sim, jobs // 2, interval_ms)
        acks, results = await measure(sim, station_ids, jobs, interval_ms)
        rt2, wr2 = await floors(sim, jobs - jobs // 2, interval_ms)
    rt, wr = rt1 + rt2, wr1 + wr2
    rows = [
        ("floor: subscription round trip", rt, rt),
        ("floor: one client write", wr, wr),
        ("(a) JobSeq -> JobAckSeq at PLC", acks, rt),
        ("(b) result -> ResultSeq at PLC", results, rt),
        ("(b) vs one client write", results, wr),
    ]
    print(f"handshake bench: {len(acks)} jobs on {n_stations} station(s), "
          f"publishing interval {interval_ms:g} ms, {len(rt)} floor samples")
    print(f"{'':34}{'p50 ms':>9}{'p99 ms':>9}{'p50 x floor':>13}{'p99 x floor':>13}")
    for name, samples, floor in rows:
        p50, p99 = pct(samples, 50), pct(samples, 99)
        print(f"{name:34}{p50 * 1e3:9.2f}{p99 * 1e3:9.2f}"
              f"{p50 / pct(floor, 50):13.2f}{p99 / pct(floor, 99):13.2f}")
    ratio = pct(acks, 99) / pct(rt, 99)
    overhead = (statistics.median(acks) - statistics.median(rt)) * 1e3
    verdict = "met" if ratio <= GOAL_P99_RATIO else "NOT met"
    print(f"job ack p99 = {ratio:.2f} x floor (goal <= {GOAL_P99_RATIO:g}x): {verdict}; "
          f"median bridge+cell overhead {overhead:.2f} ms")
    return 0 if ratio <= GOAL_P99_RATIO else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200, help="jobs per station (>= 200)")
    parser.add_argument("--interval-ms", type=float, default=50.0,
                        help="subscription publishing interval, floor and bridge alike")
    parser.add_argument("--stations", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    sys.exit(asyncio.run(main(args.jobs, args.interval_ms, args.stations)))
