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
import json
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

from mes_bridge.certs import create_certificate
from mes_bridge.plcsim import PlcSimulator, SimSecurity, SimStation, default_tag_map
from mes_bridge.session import PlcJob, PlcResult, PlcSession, SecurityConfig, StationChannel
from mes_bridge.tags import Tag

PROBE = "PROBE"
PLC_URI, BRIDGE_URI = "urn:bench:plc", "urn:bench:bridge"
FLOOR_WARMUP = 5
DEADLINE_S = 60.0  # for any single step; generous on a shared machine


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def station_ids(n: int) -> list[str]:
    return [f"ST{i:03d}" for i in range(1, n + 1)]


# ---------------------------------------------------------------- the simulator process


async def serve_sim(
    n: int, takt_s: float, jitter_s: float, probe_jitter_s: float, pki: Path | None
) -> None:
    """Child process: serve the stations and a probe; answer "dump" with the timings."""
    stations = {
        sid: SimStation(tags=default_tag_map(f"TL.{sid}"), takt_s=takt_s, jitter_s=jitter_s)
        for sid in station_ids(n)
    }
    stations[PROBE] = SimStation(tags=default_tag_map(f"TL.{PROBE}"), jitter_s=probe_jitter_s)
    security = (
        None
        if pki is None
        else SimSecurity(
            certificate=pki / "plc.der",
            private_key=pki / "plc.key.pem",
            trusted_clients=pki / "bridge.der",
            endpoints=("Basic256Sha256_SignAndEncrypt",),
        )
    )
    loop = asyncio.get_running_loop()
    async with PlcSimulator(stations, "opc.tcp://127.0.0.1:0/bench", security=security) as sim:
        print(json.dumps({"url": sim.url}), flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if line.strip() != "dump":
                return  # "quit" or the parent is gone
            print(
                json.dumps(
                    {
                        sid: [[t.job_seq, t.t_job, t.t_ack, t.t_result] for t in sim.timings(sid)]
                        for sid in stations
                    }
                ),
                flush=True,
            )


class SimProcess:
    """The simulator in its own Python process, spoken to over stdin/stdout in JSON."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self.proc, self.url = proc, url

    @classmethod
    async def start(
        cls, n: int, takt_s: float, jitter_s: float, probe_jitter_s: float, pki: Path | None
    ) -> SimProcess:
        args = [
            sys.executable,
            __file__,
            "--serve-sim",
            str(n),
            "--takt-s",
            str(takt_s),
            "--jitter-s",
            str(jitter_s),
            "--probe-jitter-s",
            str(probe_jitter_s),
        ]
        args += ["--pki", str(pki)] if pki else []
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), DEADLINE_S)
        if not line:
            raise RuntimeError("the simulator process ended before listening")
        return cls(proc, json.loads(line)["url"])

    async def timings(self) -> dict[str, list[list[float]]]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(b"dump\n")
        await self.proc.stdin.drain()
        return json.loads(await asyncio.wait_for(self.proc.stdout.readline(), DEADLINE_S))

    async def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"quit\n")
        await self.proc.stdin.drain()
        try:
            await asyncio.wait_for(self.proc.wait(), DEADLINE_S)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


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
        node = {t: ua.NodeId(f"TL.{PROBE}.{t.value}", ns) for t in Tag}
        ready: dict[int, float] = {}
        answered: list[int] = []
        done = asyncio.Event()

        async def write(*pairs: tuple[Tag, ua.Variant]) -> None:
            results = await client.uaclient.write_attributes(
                [node[t] for t, _ in pairs],
                [ua.DataValue(v) for _, v in pairs],
                ua.AttributeIds.Value,
            )
            assert all(r.is_good() for r in results), results

        class RawCell:
            async def datachange_notification(self, _node: object, seq: int, _d: object) -> None:
                if not seq or seq in answered:
                    return
                u32 = ua.VariantType.UInt32
                await write(
                    (Tag.JOB_ACK_SEQ, ua.Variant(seq, u32)),
                    (Tag.BUSY, ua.Variant(True, ua.VariantType.Boolean)),
                )
                t_ready = time.perf_counter()
                await write(
                    (Tag.RESULT, ua.Variant(1, ua.VariantType.Int16)),
                    (Tag.ERROR_CODE, ua.Variant(0, ua.VariantType.Int32)),
                    (Tag.CYCLE_TIME_MS, ua.Variant(1000, u32)),
                )
                await write(
                    (Tag.RESULT_SEQ, ua.Variant(seq, u32)),
                    (Tag.BUSY, ua.Variant(False, ua.VariantType.Boolean)),
                )
                answered.append(seq)
                if len(answered) > 1 + FLOOR_WARMUP:
                    ready[seq] = t_ready
                if len(ready) >= jobs:
                    done.set()

        sub = await client.create_subscription(interval_ms, RawCell())
        await sub.subscribe_data_change(client.get_node(node[Tag.JOB_SEQ]), sampling_interval=0)
        await asyncio.wait_for(done.wait(), DEADLINE_S + jobs * 2 * interval_ms / 1000)
        await sub.delete()
    return ready


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
    parser.add_argument("--serve-sim", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--takt-s", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--jitter-s", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--probe-jitter-s", type=float, default=0.05, help=argparse.SUPPRESS)
    parser.add_argument("--pki", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.serve_sim is not None:
        asyncio.run(
            serve_sim(args.serve_sim, args.takt_s, args.jitter_s, args.probe_jitter_s, args.pki)
        )
        sys.exit(0)
    sys.exit(asyncio.run(main(args)))
