"""Handshake latency of the bridge at 1, 10 and 50 stations, plain and SignAndEncrypt,
each figure a ratio against the raw asyncua floor of the same run and mode.

    python bench/handshake.py [--stations 1,10,50] [--modes plain,encrypt]
                              [--jobs-total 600] [--rate 10] [--interval-ms 50] [--in-step]

Per configuration the PLC simulator runs in a process of its own (so that the figures
are about the bridge, not about one process doing both ends' encoding and crypto). Its
stations ask for parts independently, each after a random wait, so that the whole line
makes about ``--rate`` jobs per second at random phases of the publishing interval.
``--in-step`` models a transfer line instead: every station indexes at the same takt,
so all of them ask within one publishing interval (a burst, measured against the same
one-job floor). Measured at the PLC
side with ``time.perf_counter`` (CLOCK_MONOTONIC, shared by the processes of one
Linux machine):

  (a) job acknowledgement: PLC writes JobSeq -> the cell's JobAckSeq arrives at the PLC
      (subscription notification, bridge processing, cell task, acknowledgement write);
  (b) result publication: the cell has its result -> ResultSeq arrives at the PLC
      (two ordered write requests: Result/ErrorCode/CycleTimeMs, then ResultSeq/Busy).

The floor is a raw asyncua client doing the same protocol steps for one probe station
with no logic at all, in the same process, mode and publishing interval as the bridge,
before and after the bridge's run: its JobSeq -> JobAckSeq round trip is the floor of
(a), its two result writes the floor of (b). A ratio of 1.0 means the bridge adds
nothing to what the protocol costs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from asyncua import Client, ua
from asyncua.crypto import security_policies
from handshake_sim import DEADLINE_S, PROBE, SimProcess, station_ids

from mes_bridge.certs import create_certificate
from mes_bridge.plcsim import default_tag_map
from mes_bridge.session import PlcJob, PlcResult, PlcSession, SecurityConfig, StationChannel
from mes_bridge.tags import Tag

PLC_URI, BRIDGE_URI = "urn:bench:plc", "urn:bench:bridge"
FLOOR_WARMUP = 5


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# ---------------------------------------------------------------- the floor


async def floor(url: str, jobs: int, interval_ms: float, pki: Path | None) -> dict[int, float]:
    """A raw asyncua cell for the probe station: the same writes as the bridge, no logic.

    Returns ``perf_counter`` at "result ready" per answered JobSeq (the job pending when
    it connected, and ``FLOOR_WARMUP`` more, are answered but not returned).
    """
    client = Client(url, timeout=10)
    if pki is not None:
        client.application_uri = BRIDGE_URI
        await client.set_security(
            security_policies.SecurityPolicyBasic256Sha256,
            str(pki / "bridge.der"),
            str(pki / "bridge.key.pem"),
            server_certificate=str(pki / "plc.der"),
            mode=ua.MessageSecurityMode.SignAndEncrypt,
        )
    async with client:
        ns = await client.get_namespace_index("urn:intern-cells:plcsim")
        node = {t: ua.NodeId(ua.String(f"TL.{PROBE}.{t.value}"), ua.Int16(ns)) for t in Tag}
        raw = RawCell(client, node, jobs)
        sub = await client.create_subscription(interval_ms, raw)
        await sub.subscribe_data_change(
            client.get_node(node[Tag.JOB_SEQ]), sampling_interval=ua.Duration(0)
        )
        await asyncio.wait_for(raw.done.wait(), DEADLINE_S + jobs * 2 * interval_ms / 1000)
        await sub.delete()
    return raw.ready


class RawCell:
    """The floor's subscription handler: answers each new JobSeq with the bridge's writes
    (acknowledge, result, ResultSeq), one write request per step, and notes when the
    result was ready; ``done`` is set once ``jobs`` answers past the warm-up are noted."""

    def __init__(self, client: Client, node: dict[Tag, ua.NodeId], jobs: int) -> None:
        self.client, self.node, self.jobs = client, node, jobs
        self.ready: dict[int, float] = {}
        self.answered: list[int] = []
        self.done = asyncio.Event()

    async def write(self, *pairs: tuple[Tag, ua.Variant]) -> None:
        results = await self.client.uaclient.write_attributes(
            [self.node[t] for t, _ in pairs],
            [ua.DataValue(v) for _, v in pairs],
            ua.AttributeIds.Value,
        )
        assert all(r.is_good() for r in results), results

    async def datachange_notification(self, _node: object, seq: int, _d: object) -> None:
        if not seq or seq in self.answered:
            return
        u32 = ua.VariantType.UInt32
        await self.write(
            (Tag.JOB_ACK_SEQ, ua.Variant(seq, u32)),
            (Tag.BUSY, ua.Variant(True, ua.VariantType.Boolean)),
        )
        t_ready = time.perf_counter()
        await self.write(
            (Tag.RESULT, ua.Variant(1, ua.VariantType.Int16)),
            (Tag.ERROR_CODE, ua.Variant(0, ua.VariantType.Int32)),
            (Tag.CYCLE_TIME_MS, ua.Variant(1000, u32)),
        )
        await self.write(
            (Tag.RESULT_SEQ, ua.Variant(seq, u32)),
            (Tag.BUSY, ua.Variant(False, ua.VariantType.Boolean)),
        )
        self.answered.append(seq)
        if len(self.answered) > 1 + FLOOR_WARMUP:
            self.ready[seq] = t_ready
        if len(self.ready) >= self.jobs:
            self.done.set()


# ---------------------------------------------------------------- the bridge


async def cell(ch: StationChannel, n: int, ready: dict[int, float]) -> None:
    """A cell task with no work to do: accept, answer OK at once, wait for the latch."""
    for _ in range(n):
        job: PlcJob = await ch.next_job()
        await ch.accept(job)
        ready[job.job_seq] = time.perf_counter()
        await ch.publish_result(job, PlcResult(1, 0, 1000))
        if not await ch.wait_result_ack(job, DEADLINE_S):
            raise TimeoutError(f"no ResultAckSeq for job {job.job_seq}")


async def bridge(
    url: str, ids: list[str], jobs: int, interval_ms: float, pki: Path | None
) -> dict[str, dict[int, float]]:
    security = (
        None
        if pki is None
        else SecurityConfig(
            policy="Basic256Sha256",
            mode="SignAndEncrypt",
            certificate=pki / "bridge.der",
            private_key=pki / "bridge.key.pem",
            trusted_server_certificates=pki / "plc.der",
        )
    )
    ready: dict[str, dict[int, float]] = {sid: {} for sid in ids}
    tags = {sid: default_tag_map(f"TL.{sid}") for sid in ids}
    async with PlcSession(url, tags, publishing_interval_ms=interval_ms, security=security) as plc:
        await asyncio.gather(*(cell(plc.station(sid), jobs, ready[sid]) for sid in ids))
    return ready


# ---------------------------------------------------------------- one configuration


@dataclass(frozen=True)
class Figures:
    mode: str
    stations: int
    jobs: int
    floor_jobs: int
    ack: tuple[float, float]  # p50, p99 in seconds
    result: tuple[float, float]
    floor_ack: tuple[float, float]
    floor_result: tuple[float, float]


def _p(samples: list[float]) -> tuple[float, float]:
    if not samples:
        raise RuntimeError("no samples")
    return pct(samples, 50), pct(samples, 99)


async def measure(n: int, mode: str, args: argparse.Namespace, pki: Path) -> Figures:
    if args.in_step:  # every station at the takt, within one publishing interval
        takt_s, jitter_s = n / args.rate, args.interval_ms / 1000
    else:  # a uniform wait of mean n / rate before each part, independent per station
        takt_s, jitter_s = 0.0, 2 * n / args.rate
    per_station = math.ceil(args.jobs_total / n)
    warmup = max(1, 10 // n)  # the first job was asked for before the bridge connected
    secure = pki if mode == "encrypt" else None
    sim = await SimProcess.start(n, takt_s, jitter_s, args.interval_ms / 1000, secure)
    try:
        probe = await floor(sim.url, args.floor_jobs // 2, args.interval_ms, secure)
        ids = station_ids(n)
        ready = await bridge(sim.url, ids, per_station + warmup, args.interval_ms, secure)
        probe |= await floor(
            sim.url, args.floor_jobs - args.floor_jobs // 2, args.interval_ms, secure
        )
        timings = await sim.timings()
    finally:
        await sim.close()
    acks, results, floor_acks, floor_results = [], [], [], []
    for sid in ids:
        for seq, t_job, t_ack, t_result in timings[sid]:
            if seq > warmup and t_ack is not None and t_result is not None:
                acks.append(t_ack - t_job)
                results.append(t_result - ready[sid][int(seq)])
    for seq, t_job, t_ack, t_result in timings[PROBE]:
        if int(seq) in probe and t_ack is not None and t_result is not None:
            floor_acks.append(t_ack - t_job)
            floor_results.append(t_result - probe[int(seq)])
    return Figures(
        mode,
        n,
        len(acks),
        len(floor_acks),
        _p(acks),
        _p(results),
        _p(floor_acks),
        _p(floor_results),
    )


def report(rows: list[Figures], args: argparse.Namespace) -> None:
    arrivals = "in step (transfer line)" if args.in_step else "independent, random"
    print(
        f"handshake bench: publishing interval {args.interval_ms:g} ms, line rate "
        f"{args.rate:g} jobs/s, arrivals {arrivals}, simulator in its own process; "
        "ms, and x the same run's raw asyncua floor"
    )
    head = (
        f"{'mode':8}{'st':>4}{'jobs':>6} | {'ack p50':>8}{'p99':>7}{'x p50':>7}{'x p99':>7}"
        f" | {'result p50':>10}{'p99':>7}{'x p50':>7}{'x p99':>7}"
        f" | {'floor ack p50/p99':>18} {'floor res p50/p99':>18}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        ms = [v * 1e3 for v in (*r.ack, *r.result, *r.floor_ack, *r.floor_result)]
        print(
            f"{r.mode:8}{r.stations:>4}{r.jobs:>6} | {ms[0]:8.1f}{ms[1]:7.1f}"
            f"{r.ack[0] / r.floor_ack[0]:7.2f}{r.ack[1] / r.floor_ack[1]:7.2f}"
            f" | {ms[2]:10.1f}{ms[3]:7.1f}"
            f"{r.result[0] / r.floor_result[0]:7.2f}{r.result[1] / r.floor_result[1]:7.2f}"
            f" | {ms[4]:8.1f}/{ms[5]:<9.1f} {ms[6]:8.1f}/{ms[7]:<9.1f}"
        )


async def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        pki = Path(tmp)
        hosts = ["localhost", "127.0.0.1", socket.gethostname()]
        create_certificate(pki, PLC_URI, hosts, stem="plc")
        create_certificate(pki, BRIDGE_URI, hosts, stem="bridge")
        rows = []
        for mode in args.modes.split(","):
            for n in (int(s) for s in args.stations.split(",")):
                rows.append(await measure(n, mode, args, pki))
                print(f"  done: {mode}, {n} station(s)", file=sys.stderr, flush=True)
    report(rows, args)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", default="1,10,50", help="station counts, comma-separated")
    parser.add_argument(
        "--modes",
        default="plain,encrypt",
        help="plain and/or encrypt (Basic256Sha256 SignAndEncrypt)",
    )
    parser.add_argument(
        "--jobs-total",
        type=int,
        default=600,
        help="measured jobs per configuration, spread over its stations",
    )
    parser.add_argument("--floor-jobs", type=int, default=300, help="floor jobs per config")
    parser.add_argument(
        "--rate",
        type=float,
        default=10.0,
        help="jobs per second of the whole line (sets each station's takt)",
    )
    parser.add_argument(
        "--interval-ms",
        type=float,
        default=50.0,
        help="subscription publishing interval, floor and bridge alike",
    )
    parser.add_argument(
        "--in-step", action="store_true", help="all stations index together at the takt (bursts)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    sys.exit(asyncio.run(main(args)))
