"""How many stations one orchestrator process runs before a job misses its takt because
of our software, and the CPU time the orchestrator spends per job.

Per step (1, 5, 10, ... stations) the PLC simulator runs in its own process at the
line's takt divided by ``--speed``, and one process serves every robot's queue with a
robot that takes 60 % of the takt and costs nothing, so that all CPU time measured in
this process is the orchestrator's (bridge, dispatch, recording, state events). A step
keeps up when every station completes at least 90 % of the jobs its takt allows.

The floor, measured in the same run, is the irreducible work per job done raw: one
OPC UA write round trip, one PostgreSQL insert and commit, one Redis SET and GET.

    python bench/orchestrator.py --stations 1,5,10,20 --speed 20 --seconds 30

Needs INTERN_DATABASE_URL and INTERN_REDIS_URL (the machine's servers).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml
from scratch_db import drop_db, fresh_db
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from cell.config import LineConfig, parse_line_config
from cell.line.clock import Clock
from cell.line.orchestrator import RunOptions, run_line
from cell.record import models as m
from cell.services import free_port

TAKT_S = 76.0
ROBOT_SHARE = 0.6


def line_data(n: int, port: int) -> dict:
    stations, robots = [], []
    for i in range(1, n + 1):
        sid = f"S{i:03d}"
        stations.append(
            {
                "id": sid,
                "plc_endpoint": f"opc.tcp://127.0.0.1:{port}/plc",
                "tags": {"namespace_uri": "urn:intern-cells:plcsim", "prefix": f"B.{sid}"},
                "recipes": [
                    {
                        "program_no": 1,
                        "name": "transfer",
                        "task": "material_handling",
                        "takt_s": TAKT_S,
                    }
                ],
            }
        )
        robots.append({"id": f"R{i:03d}", "skills": ["material_handling"], "home_station": sid})
    return {"line": "bench", "stations": stations, "robots": robots}


def serve_robots(redis_url: str, robot_ids: list[str], speed: float) -> None:
    """One process answering every robot queue with a free robot paced at ROBOT_SHARE."""
    import threading

    import redis as redis_lib

    from robot.celery_app import RUN_JOB, heartbeat_key, make_celery, robot_queue
    from robot.fence import WorkerFences
    from robot.jobs import JobOutcome, JobSpec, Outcome
    from robot.worker import StopCheck, execute_fenced

    app = make_celery(redis_url)
    fences = WorkerFences(redis_lib.Redis.from_url(redis_url), f"bench-{os.getpid()}")

    def free_robot(spec: JobSpec, _stop: StopCheck) -> JobOutcome:
        cycle_ms = int(spec.takt_s * ROBOT_SHARE * 1000)
        time.sleep(cycle_ms / 1000 / speed)
        return JobOutcome(
            job_key=spec.job_key,
            robot_id=spec.robot_id,
            outcome=Outcome.OK,
            cycle_time_ms=cycle_ms,
            policy_version="bench",
        )

    @app.task(name=RUN_JOB, ignore_result=True)
    def run(spec_data: dict, fence: str) -> None:
        # Claimed, renewed and finished under its fence, as a robot's worker does.
        execute_fenced(fences, JobSpec.model_validate(spec_data), fence, free_robot)

    client = redis_lib.Redis.from_url(redis_url)

    def beat() -> None:
        while True:
            for rid in robot_ids:
                client.set(heartbeat_key(rid), "1", px=5000)
            time.sleep(1.0)

    threading.Thread(target=beat, daemon=True).start()
    app.worker_main(
        [
            "worker",
            "-Q",
            ",".join(robot_queue(r) for r in robot_ids),
            "--pool",
            "threads",
            "-c",
            str(len(robot_ids)),
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"bench-{os.getpid()}@%h",
        ]
    )


def wait_port(port: int, deadline_s: float) -> None:
    import socket

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"PLC simulator did not listen on port {port} within {deadline_s} s")


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def forget_jobs(redis_url: str) -> None:
    """Remove the earlier steps' jobs (their fences and queued messages) from Redis."""
    import redis as redis_lib

    from robot.fence import record_key

    client = redis_lib.Redis.from_url(redis_url)
    for key in client.scan_iter(record_key("*")):
        client.delete(key)
    for key in client.scan_iter("robot.*"):
        client.delete(key)
    client.close()


def step(
    n: int, server_url: str, redis_url: str, speed: float, seconds: float, work: Path
) -> tuple[bool, float, int, float]:
    """Run ``n`` stations; returns (kept up, CPU ms per job, jobs, worst station share)."""
    port = free_port()
    data = line_data(n, port)
    cfg = work / f"line-{n}.yaml"
    cfg.write_text(yaml.safe_dump(data))
    line = parse_line_config(data)
    db = fresh_db(server_url)
    forget_jobs(redis_url)  # a fresh record numbers its jobs from the start again
    env = dict(os.environ, INTERN_REDIS_URL=redis_url, INTERN_DATABASE_URL=db)
    procs = start_robots_and_plc([r.id for r in line.robots], cfg, port, speed, env)
    try:
        wait_port(port, 90.0)
        opts = RunOptions(
            db, redis_url, data_dir=work / f"data-{n}", clock=Clock(speed), job_timeout_s=60
        )
        cpu, wall = asyncio.run(run_measured(line, opts, speed, seconds))
        per_station = jobs_per_station(db)
    finally:
        for p in procs:
            p.terminate()
            p.wait(20)
        drop_db(server_url, db)
    allowed = (wall + TAKT_S / speed) / (TAKT_S / speed)
    worst = min(per_station.get(st.id, 0) for st in line.stations) / allowed
    jobs_in_window = sum(per_station.values()) * wall / (wall + TAKT_S / speed)
    return worst >= 0.9, 1000 * cpu / max(jobs_in_window, 1), sum(per_station.values()), worst


def start_robots_and_plc(
    robot_ids: list[str], cfg: Path, port: int, speed: float, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    """The free robots and the PLC simulator, each in a process of its own; returned as
    (plc, robots), the order in which a step stops them."""
    robots = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve-robots",
            ",".join(robot_ids),
            "--speed",
            str(speed),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    plc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cell",
            "plcsim",
            "--config",
            str(cfg),
            "--port",
            str(port),
            "--speed",
            str(speed),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return plc, robots


async def run_measured(
    line: LineConfig, opts: RunOptions, speed: float, seconds: float
) -> tuple[float, float]:
    """Run the line and measure (CPU seconds, wall seconds) over ``seconds`` once the
    first jobs are under way."""
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(run_line(line, opts, stop, ready=ready))
    await asyncio.wait_for(ready.wait(), 60)
    await asyncio.sleep(TAKT_S / speed)  # first jobs under way
    c0, t0 = cpu_s(), time.monotonic()
    await asyncio.sleep(seconds)
    c1, t1 = cpu_s(), time.monotonic()
    stop.set()
    await task
    return c1 - c0, t1 - t0


def jobs_per_station(db: str) -> dict[str, int]:
    """Jobs recorded per station in the step's database."""
    engine = create_engine(db)
    with Session(engine) as s:
        per_station = dict(
            s.execute(select(m.Job.station_id, func.count()).group_by(m.Job.station_id)).all()
        )
    engine.dispose()
    return per_station


def floor_ms(server_url: str, redis_url: str, n: int = 200) -> float:
    """CPU ms per job of the raw work: OPC UA write, one row committed, Redis SET+GET."""
    import redis as redis_lib
    from asyncua import Client, Server, ua

    db = fresh_db(server_url)
    engine = create_engine(db)
    client = redis_lib.Redis.from_url(redis_url)

    async def main() -> float:
        server = Server()
        port = free_port()
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/floor")
        idx = await server.register_namespace("urn:floor")
        var = await server.nodes.objects.add_variable(
            idx, "Seq", ua.Variant(0, ua.VariantType.UInt32)
        )
        await var.set_writable()
        async with server, Client(f"opc.tcp://127.0.0.1:{port}/floor") as c:
            node = c.get_node(var.nodeid)
            c0 = cpu_s()
            for i in range(n):
                await node.write_value(ua.DataValue(ua.Variant(i, ua.VariantType.UInt32)))
                with engine.begin() as conn:
                    conn.execute(
                        text("INSERT INTO parts (part_id) VALUES (:p)"), {"p": f"floor-{i}"}
                    )
                client.set(f"floor:{i}", "x")
                client.get(f"floor:{i}")
            return cpu_s() - c0

    try:
        # The server runs in this process too: its share is part of the floor.
        return 1000 * asyncio.run(main()) / n
    finally:
        engine.dispose()
        drop_db(server_url, db)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stations", default="1,5,10,20")
    ap.add_argument("--speed", type=float, default=20.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--serve-robots", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    redis_url = os.environ.get("INTERN_REDIS_URL", "redis://127.0.0.1:6379/0")
    if args.serve_robots:
        serve_robots(redis_url, args.serve_robots.split(","), args.speed)
        return
    server_url = os.environ.get(
        "INTERN_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    server_url = server_url.replace("postgresql://", "postgresql+psycopg://", 1)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-orch-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    floor = floor_ms(server_url, redis_url)
    print(
        f"takt {TAKT_S:g} s at {args.speed:g}x = {TAKT_S / args.speed:.2f} s wall; "
        f"robot busy {ROBOT_SHARE:.0%} of it; {args.seconds:g} s per step"
    )
    print(f"floor (raw OPC UA write + row commit + Redis SET/GET): {floor:.2f} ms CPU per job")
    print(
        f"{'stations':>8} {'jobs':>6} {'worst share':>11} {'CPU ms/job':>10} {'x floor':>8} kept up"
    )
    best = 0
    for n in (int(x) for x in args.stations.split(",")):
        ok, ms, jobs, worst = step(n, server_url, redis_url, args.speed, args.seconds, work)
        print(
            f"{n:>8} {jobs:>6} {worst:>11.2f} {ms:>10.2f} {ms / floor:>8.1f} "
            f"{'yes' if ok else 'NO'}",
            flush=True,
        )
        if not ok:
            break
        best = n
    print(
        f"one orchestrator process kept up with {best} stations at a "
        f"{TAKT_S / args.speed:.2f} s takt on this machine"
    )


if __name__ == "__main__":
    main()
