"""The handshake bench's PLC simulator in a Python process of its own, so that the bench's
figures are about the bridge, not about one process doing both ends' encoding and crypto.

    python bench/handshake_sim.py N --takt-s T --jitter-s J --probe-jitter-s P [--pki DIR]

is what ``SimProcess.start`` runs: it serves N stations and a probe station, prints
``{"url": ...}`` once it listens, answers each ``dump`` line on stdin with the timings of
every station as one JSON line, and ends on ``quit`` or at the end of its input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from mes_bridge.plcsim import PlcSimulator, SimSecurity, SimStation, default_tag_map

PROBE = "PROBE"
DEADLINE_S = 60.0  # for any single step; generous on a shared machine


def station_ids(n: int) -> list[str]:
    return [f"ST{i:03d}" for i in range(1, n + 1)]


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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stations", type=int)
    parser.add_argument("--takt-s", type=float, default=0.0)
    parser.add_argument("--jitter-s", type=float, default=0.0)
    parser.add_argument("--probe-jitter-s", type=float, default=0.05)
    parser.add_argument("--pki", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(serve_sim(args.stations, args.takt_s, args.jitter_s, args.probe_jitter_s, args.pki))
