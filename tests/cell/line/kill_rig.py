"""The parts of a fault run (``tests.cell.line.kills``): the plan, the processes it
kills and restarts, and what it reads from the PLC simulator and the record."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import redis
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from cell.config import LineConfig
from cell.record import models as m
from mes_bridge.plcsim import PlcSimulator
from mes_bridge.tags import Tag
from tests.cell.line.kill_analysis import Latch, RowView, WorkerEvent, read_worker_log

# The sample line's robots work 23-57 s per job (handling, screwing, nuts): at 20x a job
# lasts 1-3 s of wall time, long enough for a kill to land inside it.
SCALE = 20.0


@dataclass(frozen=True)
class KillPlan:
    """How one scenario is run. Times are wall seconds, drawn uniformly from each range."""

    scenario: str
    kills: int = 3
    seed: int = 0
    restart_after_s: tuple[float, float] = (0.5, 2.0)  # dead time before the restart
    run_before_kill_s: tuple[float, float] = (0.3, 2.0)  # serving time before looking to kill
    scale: float = SCALE
    lease_s: float = 5.0
    settle_timeout_s: float = 90.0  # for the line to finish and record the open jobs


class Proc:
    """One command slot (``python -m cell ...``), killable and restartable; each start
    logs to a file of its own."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.args, self.env, self.log_dir = name, args, env, log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []
        self.started_at = 0.0  # perf_counter of the last start

    def start(self) -> None:
        path = self.log_dir / f"{self.name}-{len(self.logs) + 1}.log"
        self.logs.append(path)
        with path.open("ab") as log:
            # A session of its own: a kill takes the whole process group (Celery's pool).
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cell", *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started_at = time.perf_counter()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def kill(self) -> float:
        """SIGKILL the process group now; returns the perf_counter of the kill."""
        assert self.proc is not None
        t = time.perf_counter()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None
        return t

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM and wait (a worker finishes its job, the orchestrator drains); then
        SIGKILL what is left."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


@dataclass
class Rig:
    """A running sample line: PLC simulator, robot workers, orchestrator slots."""

    line: LineConfig
    sim: PlcSimulator
    workers: list[Proc]
    orchestrators: list[Proc]
    db_url: str
    wall_offset: float  # time.time() - time.perf_counter(), taken once in this process
    writes: list[tuple[float, str]]  # (perf_counter, station) of every client write

    @property
    def stations(self) -> list[str]:
        return [st.id for st in self.line.stations]

    def job_seq(self, sid: str) -> int:
        """The station's JobSeq as the PLC holds it now."""
        seq = self.sim.value(sid, Tag.JOB_SEQ)
        return seq if isinstance(seq, int) else 0

    def mid_job(self) -> bool:
        """Some station has a job acknowledged and not yet answered."""
        for sid in self.stations:
            seq = self.sim.value(sid, Tag.JOB_SEQ)
            acked = seq and self.sim.value(sid, Tag.JOB_ACK_SEQ) == seq
            if acked and self.sim.value(sid, Tag.RESULT_SEQ) != seq:
                return True
        return False

    def written_since(self, t: float, stations: list[str] | None = None) -> bool:
        """Every station in ``stations`` (default: any one) was written after ``t``."""
        seen = {sid for at, sid in self.writes if at > t}
        return bool(seen) if stations is None else set(stations) <= seen

    def latched_through(self, seqs: dict[str, int]) -> bool:
        """Every station's PLC latched a result for a JobSeq at or past ``seqs``."""
        return all(
            any(r.job_seq >= seq for r in self.sim.completed(sid)) for sid, seq in seqs.items()
        )

    def latches(self) -> list[Latch]:
        out = []
        for sid in self.stations:
            at = {t.job_seq: t.t_result for t in self.sim.timings(sid)}
            for r in self.sim.completed(sid):
                t = at.get(r.job_seq)
                out.append(
                    Latch(
                        sid,
                        r.job_seq,
                        r.part_id,
                        r.result == 1,
                        t + self.wall_offset if t is not None else None,
                    )
                )
        return out

    def active(self) -> Proc:
        """The orchestrator serving the line: the holder of most live station leases where
        the record has leases, else the one that last published a job."""
        live = {pid: p for p in self.orchestrators if (pid := p.pid) is not None}
        owners = lease_owner_pids(self.db_url)
        counts = {pid: owners.count(pid) for pid in live if pid in owners}
        if counts:
            return live[max(counts, key=lambda pid: counts[pid])]
        if not live:
            return self.orchestrators[0]
        last = {pid: last_published(p.logs[-1]) for pid, p in live.items()}
        return live[max(last, key=lambda pid: last[pid])]


def lease_owner_pids(db_url: str) -> list[int]:
    """The pids in the owners of unexpired leases (owner ``host:pid:...``); [] where the
    record has no lease table or cannot be reached."""
    engine = create_engine(db_url, poolclass=NullPool, connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as c:
            if c.scalar(text("SELECT to_regclass('station_leases')")) is None:
                return []
            owners = c.scalars(
                text("SELECT owner FROM station_leases WHERE expires_at > clock_timestamp()")
            ).all()
    except DBAPIError:
        return []
    finally:
        engine.dispose()
    pids = [re.match(r"[^:]*:(\d+)", o) for o in owners]
    return [int(p.group(1)) for p in pids if p is not None]


def last_published(log: Path) -> str:
    """The time (ISO text, sortable) of the last "job published" line in a JSON log."""
    last = ""
    if log.exists():
        for line in log.read_text(errors="replace").splitlines():
            if '"job published' in line:
                found = re.search(r'"time": "([^"]+)"', line)
                last = found.group(1) if found else last
    return last


async def until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``cond`` until it holds; ``AssertionError`` naming ``what`` after ``timeout``."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


def read_rows(db_url: str) -> list[RowView]:
    """Every job on record with its fastener count."""
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        with Session(engine) as s:
            count = (
                select(func.count())
                .where(m.FastenerResult.job_id == m.Job.id)
                .scalar_subquery()
                .label("fasteners")
            )
            return [
                RowView(
                    j.station_id,
                    j.epoch,
                    j.job_seq,
                    j.part_id,
                    j.ok,
                    j.error_code,
                    j.attempt,
                    j.policy_version,
                    j.task,
                    n,
                )
                for j, n in s.execute(select(m.Job, count)).all()
            ]
    finally:
        engine.dispose()


def recorded(db_url: str, latches: list[Latch]) -> bool:
    """Every latched result has its row (False while the record cannot be reached)."""
    try:
        have = {(r.station, r.job_seq, r.part_id) for r in read_rows(db_url)}
    except DBAPIError:
        return False
    return all((x.station, x.job_seq, x.part_id) in have for x in latches)


def worker_events(rig: Rig) -> list[WorkerEvent]:
    return [e for w in rig.workers for log in w.logs for e in read_worker_log(log)]


# Redis databases kept for runs that need one of their own (the shared test database is 9).
OWN_REDIS_DBS = range(10, 16)
OWNER_KEY = "intern:test:owner"


def claim_redis_db(server_url: str, owner: str, dbs: Iterable[int] = OWN_REDIS_DBS) -> str | None:
    """The URL of the first empty database of ``dbs`` on ``server_url``, claimed with an
    owner key (so a concurrent run passes it by); None when all are in use. The fences
    and run-once guards are keyed by station and JobSeq, which every run of the sample
    line reuses: two runs must never share a database."""
    for db in dbs:
        url = redis_db_url(server_url, db)
        client = redis.Redis.from_url(url)
        try:
            if client.dbsize() == 0 and client.set(OWNER_KEY, owner, nx=True, ex=3600):
                return url
        finally:
            client.close()
    return None


def release_redis_db(url: str) -> None:
    """Empty a database taken with ``claim_redis_db``."""
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def redis_db_url(url: str, db: int) -> str:
    """``url`` with its database number replaced by ``db``."""
    base = url.rsplit("/", 1)[0] if url.count("/") > 2 else url
    return f"{base}/{db}"
