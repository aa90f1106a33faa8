"""Station leases in the orchestrator: the keeper of one process (gains, losses, release,
and a station dropped locally before its lease can expire in PostgreSQL), then two
orchestrators serving one simulated line, the active one crashing and the standby taking
every station over while jobs go on."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.orm import Session

from cell.demo.plcsim import line_simulator
from cell.line.clock import Clock
from cell.line.leases import LeaseKeeper
from cell.line.orchestrator import RunOptions, run_line
from cell.line.station import CellContext
from cell.record import alerts
from cell.record import models as m
from cell.record.leases import Lease, station_leases
from cell.record.migrate import upgrade
from cell.record.outcomes import Rework
from cell.services import EmbeddedPostgres, free_port
from tests.cell.harness import Workers, sample_line

SCALE = 40.0


class Sessions:
    """The keeper's session factory, whose database can be swapped for one that does not
    answer (nothing listens on its port), as when PostgreSQL goes away."""

    def __init__(self, url: str) -> None:
        self.good = create_engine(url)
        self.dead = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
        self.engine: Engine = self.good

    def __call__(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.good.dispose()
        self.dead.dispose()


@pytest.fixture
def sessions(database_url: str) -> Iterator[Sessions]:
    made = Sessions(database_url)
    yield made
    made.close()


@pytest.fixture
def stations() -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"K{tag}-A", f"K{tag}-B"]


def _leases(engine: Engine, ids: list[str]) -> dict[str, Lease]:
    with Session(engine) as s:
        return {lease.station_id: lease for lease in station_leases(s) if lease.station_id in ids}


def _age(engine: Engine, ids: list[str]) -> None:
    """Age the leases past their expiry, as a crashed holder's would be."""
    with Session(engine) as s:
        s.execute(
            text(
                "UPDATE station_leases SET expires_at = clock_timestamp() - interval '1 second'"
                " WHERE station_id = ANY(:ids)"
            ),
            {"ids": ids},
        )
        s.commit()


async def test_a_keeper_that_cannot_renew_stops_serving_before_its_lease_expires(
    sessions: Sessions, stations: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    keeper = LeaseKeeper(sessions, "host-a:1:aa", stations, lease_s=2.0)
    running = asyncio.create_task(keeper.run())
    try:
        held = await asyncio.wait_for(keeper.changed(frozenset()), 30)
        assert held == frozenset(stations)
        assert keeper.fencing() == {sid: 1 for sid in stations}
        sessions.engine = sessions.dead
        with caplog.at_level(logging.INFO, logger="cell.line.leases"):
            lost = await asyncio.wait_for(keeper.changed(held), 30)
            # What PostgreSQL says at the moment the keeper let go: still ours, not expired.
            in_db = _leases(sessions.good, stations)
        assert lost == frozenset()
        for sid in stations:
            assert in_db[sid].owner == "host-a:1:aa"
            assert not in_db[sid].expired, "the keeper must let go before the lease expires"
        messages = [r.getMessage() for r in caplog.records]
        assert any("database unreachable" in msg for msg in messages)
        assert any(
            msg == f"station {stations[0]}: lease (fencing 1) not renewed in time; "
            "no longer served here"
            for msg in messages
        )
        # The database back: the same owner takes its stations again.
        sessions.engine = sessions.good
        again = await asyncio.wait_for(keeper.changed(frozenset()), 30)
        assert again == frozenset(stations)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_a_standby_takes_over_a_crashed_holders_stations_and_the_holder_lets_go(
    sessions: Sessions, stations: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    active = LeaseKeeper(sessions, "host-a:1:aa", stations, lease_s=30.0)
    standby = LeaseKeeper(sessions, "host-b:2:bb", stations, lease_s=30.0)
    await active.round()
    await standby.round()
    assert (active.held(), standby.held()) == (frozenset(stations), frozenset())
    _age(sessions.good, stations[:1])  # as if the active had stopped renewing it
    with caplog.at_level(logging.INFO, logger="cell.line.leases"):
        await standby.round()
        assert standby.fencing() == {stations[0]: 2}
        await active.round()  # its renewal is refused: the station is no longer its own
    assert active.fencing() == {stations[1]: 1}
    messages = [r.getMessage() for r in caplog.records]
    assert f"station {stations[0]}: lease taken (fencing 2) by host-b:2:bb" in messages
    assert (
        f"station {stations[0]}: lease (fencing 1) taken over by another process; "
        "no longer served here"
    ) in messages


async def test_release_hands_the_stations_to_a_standby_at_once(
    sessions: Sessions, stations: list[str]
) -> None:
    active = LeaseKeeper(sessions, "host-a:1:aa", stations, lease_s=30.0)
    standby = LeaseKeeper(sessions, "host-b:2:bb", stations, lease_s=30.0)
    await active.round()
    await standby.round()
    assert standby.held() == frozenset()
    await active.release()
    assert active.held() == frozenset()
    await standby.round()
    assert standby.fencing() == {sid: 2 for sid in stations}


async def test_without_the_database_a_keeper_waits_to_take_leases(
    sessions: Sessions, stations: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    sessions.engine = sessions.dead
    keeper = LeaseKeeper(sessions, "host-a:1:aa", stations, lease_s=2.0)
    with caplog.at_level(logging.WARNING, logger="cell.line.leases"):
        await keeper.round()
        await keeper.round()
    assert keeper.held() == frozenset()
    waiting = [r for r in caplog.records if "waiting for it to take leases" in r.getMessage()]
    assert len(waiting) == 1  # once per outage, not every round
    sessions.engine = sessions.good
    await keeper.round()
    assert keeper.held() == frozenset(stations)


def test_a_lease_too_short_for_its_margin_is_refused(sessions: Sessions) -> None:
    with pytest.raises(ValueError, match="leaves no time to serve"):
        LeaseKeeper(sessions, "host-a:1:aa", ["ST10"], lease_s=1.0)


# ---------------------------------------------------------------- two orchestrators


def _owners(url: str, ids: tuple[str, ...]) -> dict[str, tuple[str, int, bool]]:
    engine = create_engine(url)
    try:
        return {
            sid: (lease.owner, lease.fencing, lease.expired)
            for sid, lease in _leases(engine, list(ids)).items()
        }
    finally:
        engine.dispose()


def _clear_holds(url: str) -> None:
    """A technician: clear the alerts that hold a station (a job cut short by the crash)."""
    engine = create_engine(url)
    try:
        with Session(engine) as s:
            open_ids = s.scalars(
                select(m.Alert.id).where(
                    m.Alert.cleared_at.is_(None), m.Alert.kind.in_(("interrupted", "nok_hold"))
                )
            ).all()
            for alert_id in open_ids:
                alert = alerts.acknowledge(s, alert_id, author="technician")
                if alert.job_id is not None:
                    alerts.record_rework(s, alert_id, Rework.REWORKED_OK, author="technician")
                alerts.clear(s, alert_id, author="technician")
    finally:
        engine.dispose()


@pytest.mark.slow
async def test_a_standby_orchestrator_takes_over_every_station_when_the_active_crashes(
    tmp_path: Path, make_database: Callable[[], str], redis_url: str
) -> None:
    url = make_database()
    ids = ("ST20", "ST30")
    line, cfg = sample_line(tmp_path, stations=ids)
    workers = Workers(cfg, redis_url, SCALE, tmp_path / "logs")
    workers.start("R2")
    workers.start("R3")

    def options(name: str) -> RunOptions:
        return RunOptions(
            url,
            redis_url,
            data_dir=tmp_path / name,  # each process its own outbox
            job_timeout_s=120,
            replay_every_s=0.5,
            clock=Clock(SCALE),
            drain_s=30.0,
            leases=True,
            lease_s=2.0,
        )

    async def start(name: str, stop: asyncio.Event) -> tuple[asyncio.Task[None], CellContext]:
        ready, out = asyncio.Event(), list[CellContext]()
        task = asyncio.create_task(
            run_line(line, options(name), stop, ready=ready, context_out=out)
        )
        await asyncio.wait(
            [task, asyncio.create_task(ready.wait())],
            timeout=60,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if task.done():
            task.result()
        out[0].poll_s = 0.1
        return task, out[0]

    async def until(cond: Callable[[], bool], timeout: float, what: str) -> None:
        end = asyncio.get_running_loop().time() + timeout
        while not cond():
            if asyncio.get_running_loop().time() > end:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            await asyncio.to_thread(_clear_holds, url)
            await asyncio.sleep(0.2)

    try:
        async with line_simulator(line, speed=None, parts=None) as sim:
            stop_a, stop_b = asyncio.Event(), asyncio.Event()
            active, _ = await start("a", stop_a)

            def all_owned_by_one() -> bool:
                got = _owners(url, ids)
                return len(got) == 2 and len({o for o, _, _ in got.values()}) == 1

            await until(all_owned_by_one, 60, "the first process to take every station")
            first_owner = _owners(url, ids)[ids[0]][0]
            await until(lambda: all(len(sim.completed(s)) >= 2 for s in ids), 120, "2 parts each")
            standby, _ = await start("b", stop_b)
            await asyncio.sleep(1.0)  # a few of the standby's rounds: it takes nothing
            assert {o for o, _, _ in _owners(url, ids).values()} == {first_owner}

            # A crash, as far as the others can tell: no drain, no release.
            active.cancel()
            await asyncio.gather(active, return_exceptions=True)
            before = {s: len(sim.completed(s)) for s in ids}

            def taken_over() -> bool:
                got = _owners(url, ids)
                return all(o != first_owner and f == 2 and not e for o, f, e in got.values())

            await until(taken_over, 60, "the standby to take every station over")
            await until(
                lambda: all(len(sim.completed(s)) >= before[s] + 2 for s in ids),
                120,
                "2 more parts each from the standby",
            )
            stop_b.set()
            await asyncio.wait_for(standby, 60)
            # Stopped cleanly: its leases are released at once.
            assert all(expired for _, _, expired in _owners(url, ids).values())
            completed = {s: list(sim.completed(s)) for s in ids}
    finally:
        workers.stop_all()

    engine = create_engine(url)
    try:
        with Session(engine) as s:
            rows = s.scalars(select(m.Job)).all()
            keys = [(r.station_id, r.epoch, r.job_seq) for r in rows]
            assert len(keys) == len(set(keys)), "a job recorded twice"
            recorded = {(r.station_id, r.job_seq): r for r in rows}
            for sid, results in completed.items():
                for res in results:  # every latched result is on record, as latched
                    row = recorded[(sid, res.job_seq)]
                    assert (1 if row.ok else 2, row.cycle_time_ms) == (
                        res.result,
                        res.cycle_time_ms,
                    )
    finally:
        engine.dispose()


@pytest.mark.slow
async def test_with_leases_a_database_outage_stops_serving_and_its_return_resumes(
    tmp_path: Path, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg")  # a server of our own, to stop and start
    url = pg.start()
    upgrade(url)
    line, cfg = sample_line(tmp_path, stations=("ST20",))
    workers = Workers(cfg, redis_url, SCALE, tmp_path / "logs")
    workers.start("R2")
    opts = RunOptions(
        url,
        redis_url,
        data_dir=tmp_path / "cell",
        job_timeout_s=120,
        replay_every_s=0.5,
        clock=Clock(SCALE),
        drain_s=30.0,
        leases=True,
        lease_s=2.0,
    )

    def logged(text: str) -> Callable[[], bool]:
        return lambda: any(r.getMessage().endswith(text) for r in caplog.records)

    async def until(cond: Callable[[], bool], what: str, technician: bool = False) -> None:
        for _ in range(600):
            if cond():
                return
            if technician:  # a job cut short by the outage may hold the station
                await asyncio.to_thread(_clear_holds, url)
            await asyncio.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    stop = asyncio.Event()
    try:
        with caplog.at_level(logging.INFO, logger="cell.line"):
            async with line_simulator(line, speed=None, parts=None) as sim:
                runner = asyncio.create_task(run_line(line, opts, stop))
                await until(lambda: len(sim.completed("ST20")) >= 2, "2 parts")
                pg.stop()
                # Renewals fail: the station is let go and its PLC session closed.
                await until(logged("not renewed in time; no longer served here"), "the loss")
                await until(logged("stations served here: none"), "the session closed")
                caplog.clear()
                assert pg.start() == url
                await until(logged("stations served here: ST20"), "the station served again")
                served = len(sim.completed("ST20"))
                await until(lambda: len(sim.completed("ST20")) >= served + 2, "2 more parts", True)
                stop.set()
                await asyncio.wait_for(runner, 60)
    finally:
        workers.stop_all()
        pg.stop()
